terraform {
  # Tested with Terraform 1.11 and the AWS provider 5.100 (make terraform-test); OpenTofu >= 1.9 reads the same code.
  # 1.9: variable validations refer to other variables (admin_cidrs and allow_wide_admin_cidrs).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}
