# The local lab's inventory, rendered by the very module that renders the AWS inventory, so the lab
# exercises site.yml and burst.yml with exactly the shape `terraform apply` produces. Lab hosts have
# no public address, speak to the Maven-assembled Kafka (broker flavor `kafka`), and are reached as
# root with the nspawn helper's generated key. The S3 names are placeholders the kafka flavor ignores.
locals {
  no_public = { public_ip = "" }
}

module "inventory" {
  source = "../modules/inventory"

  brokers    = [for h in var.brokers : merge(h, local.no_public)]
  gateways   = [for h in var.gateways : merge(h, local.no_public)]
  agents     = [for h in var.agents : merge(h, local.no_public)]
  monitoring = [for h in var.monitoring : merge(h, local.no_public)]

  broker_flavor        = "kafka"
  s3_data_bucket       = "lab-unused-data"
  s3_ops_bucket        = "lab-unused-ops"
  s3_region            = "us-east-1"
  ssh_user             = "root"
  ssh_private_key_file = var.ssh_private_key_file
}
