output "ansible_inventory_yaml" {
  description = "The Ansible inventory; `make tf-apply` writes it to ansible/inventories/aws/hosts.yml."
  value       = module.inventory.yaml
}

output "hosts" {
  description = "Hosts per group with id, public_ip and private_ip."
  value       = module.fleet.hosts
}

output "data_bucket" {
  description = "AutoMQ data bucket name."
  value       = module.storage.data_bucket
}

output "ops_bucket" {
  description = "AutoMQ ops bucket name."
  value       = module.storage.ops_bucket
}

output "controller_quorum_voters" {
  description = "KRaft controller.quorum.voters of the brokers."
  value       = module.inventory.controller_quorum_voters
}

output "kafka_bootstrap_servers" {
  description = "Broker bootstrap list (private addresses)."
  value       = module.inventory.kafka_bootstrap_servers
}

output "vpc_id" {
  description = "VPC the hosts run in."
  value       = module.network.vpc_id
}

output "security_group_ids" {
  description = "Security group id per host group."
  value       = module.security.security_group_ids
}

output "broker_role_arn" {
  description = "IAM role of the brokers (S3 access to the two buckets only)."
  value       = module.iam.broker_role_arn
}
