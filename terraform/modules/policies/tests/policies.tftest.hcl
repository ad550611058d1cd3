# tofu test for the provider-free IAM/S3 policy documents.

variables {
  bucket_arns = {
    data = "arn:aws:s3:::pilot-automq-data-test"
    ops  = "arn:aws:s3:::pilot-automq-ops-test"
  }
}

run "bucket_policy_is_tls_only" {
  command = apply

  assert {
    condition     = keys(output.tls_only_bucket_policies) == ["data", "ops"]
    error_message = "one bucket policy per bucket expected"
  }
  assert {
    condition = alltrue([
      for k, p in output.tls_only_bucket_policies : (
        length(jsondecode(p).Statement) == 1 &&
        jsondecode(p).Statement[0].Effect == "Deny" &&
        jsondecode(p).Statement[0].Principal == "*" &&
        jsondecode(p).Statement[0].Action == "s3:*" &&
        jsondecode(p).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
      )
    ])
    error_message = "each bucket policy must deny all actions to everyone without TLS, and nothing else"
  }
  assert {
    condition = jsondecode(output.tls_only_bucket_policies["data"]).Statement[0].Resource == [
      "arn:aws:s3:::pilot-automq-data-test", "arn:aws:s3:::pilot-automq-data-test/*",
    ]
    error_message = "the TLS rule must cover the bucket and all of its objects"
  }
  assert {
    condition     = !strcontains(output.tls_only_bucket_policies["data"], "\"Allow\"")
    error_message = "the bucket policy must not grant anything"
  }
}

run "broker_policy_is_least_privilege" {
  command = apply

  assert {
    condition = alltrue([
      for s in jsondecode(output.broker_s3_policy).Statement : alltrue([for a in s.Action : startswith(a, "s3:") && !strcontains(a, "*")])
    ])
    error_message = "broker actions must be explicit S3 actions, no wildcards"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(output.broker_s3_policy).Statement : s.Resource])) == toset([
      "arn:aws:s3:::pilot-automq-data-test", "arn:aws:s3:::pilot-automq-ops-test",
      "arn:aws:s3:::pilot-automq-data-test/*", "arn:aws:s3:::pilot-automq-ops-test/*",
    ])
    error_message = "the broker may touch its two buckets and their objects only"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(output.broker_s3_policy).Statement : s.Effect == "Allow" && alltrue([
        for a in s.Action : !contains(["s3:PutBucketPolicy", "s3:DeleteBucket", "s3:PutBucketAcl", "s3:PutObjectAcl"], a)
      ])
    ])
    error_message = "no bucket administration or ACL changes for brokers"
  }
  assert {
    condition     = contains(jsondecode(output.broker_s3_policy).Statement[1].Action, "s3:AbortMultipartUpload")
    error_message = "AutoMQ needs to abort multipart uploads"
  }
  assert {
    condition     = jsondecode(output.assume_role_ec2_policy).Statement[0].Principal.Service == "ec2.amazonaws.com"
    error_message = "only EC2 may assume the broker role"
  }
}

run "object_arn_rejected" {
  command = plan

  variables {
    bucket_arns = { data = "arn:aws:s3:::pilot-automq-data-test/*" }
  }

  expect_failures = [var.bucket_arns]
}
