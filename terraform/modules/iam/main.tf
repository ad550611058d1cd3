# Policy documents come from the provider-free module policies (tested with `tofu test`):
# EC2 may assume the role; the role may list/read/write/delete objects of the given buckets only.
module "policies" {
  source = "../policies"

  bucket_arns = var.bucket_arns
}

resource "aws_iam_role" "broker" {
  name                 = "${var.name}-broker"
  description          = "AutoMQ brokers: read/write the pilot's S3 buckets, nothing else."
  assume_role_policy   = module.policies.assume_role_ec2_policy
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "automq_buckets" {
  name   = "${var.name}-automq-buckets"
  role   = aws_iam_role.broker.id
  policy = module.policies.broker_s3_policy
}

resource "aws_iam_instance_profile" "broker" {
  name = "${var.name}-broker"
  role = aws_iam_role.broker.name

  tags = var.tags
}
