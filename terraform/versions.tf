terraform {
  # Built and tested with OpenTofu 1.12.6 (scripts/build-opentofu.sh); Terraform >= 1.8 reads the same code.
  required_version = ">= 1.8.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
