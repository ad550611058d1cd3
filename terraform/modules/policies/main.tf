locals {
  # Deny every request to a bucket or its objects that does not use TLS.
  tls_only = {
    for k, arn in var.bucket_arns : k => {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [arn, "${arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }]
    }
  }

  # What AutoMQ's S3 client does on its buckets: list them, read, write and delete objects, manage
  # multipart uploads. No other bucket, no bucket administration, no wildcard actions.
  broker_s3 = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListAutoMQBuckets"
        Effect   = "Allow"
        Action   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
        Resource = sort(values(var.bucket_arns))
      },
      {
        Sid      = "ReadWriteAutoMQObjects"
        Effect   = "Allow"
        Action   = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
        Resource = [for a in sort(values(var.bucket_arns)) : "${a}/*"]
      },
    ]
  }

  assume_role_ec2 = {
    Version = "2012-10-17"
    Statement = [{
      Sid       = "Ec2AssumesBrokerRole"
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  }
}
