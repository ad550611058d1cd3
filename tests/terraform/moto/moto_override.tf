# Test-only: copied into a throw-away copy of terraform/ by tests/terraform/test_apply_moto.py, never
# used by `make tf-apply`. Terraform merges this block into the root's provider "aws": every API goes
# to the moto server the test started on loopback (MOTO_ENDPOINT is replaced by its URL), with test
# credentials, and the checks a real account needs but moto cannot answer are skipped.
provider "aws" {
  access_key = "testing"
  secret_key = "testing"

  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = false

  endpoints {
    ec2 = "MOTO_ENDPOINT"
    iam = "MOTO_ENDPOINT"
    s3  = "MOTO_ENDPOINT"
    sts = "MOTO_ENDPOINT"
  }
}
