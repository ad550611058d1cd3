output "vpc_id" {
  description = "Id of the VPC the hosts live in (created or existing)."
  value       = local.create ? aws_vpc.this[0].id : data.aws_vpc.existing[0].id
}

output "vpc_cidr" {
  description = "CIDR block of that VPC."
  value       = local.create ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
}

output "public_subnet_ids" {
  description = "Subnets routed to the internet gateway (hosts with public addresses, the bastion), in order."
  value       = local.create ? aws_subnet.public[*].id : var.existing_subnet_ids
}

output "private_subnet_ids" {
  description = "Subnets routed through the NAT gateway (hosts without public addresses); the public ones when none were created."
  value       = local.private ? aws_subnet.private[*].id : (local.create ? aws_subnet.public[*].id : var.existing_subnet_ids)
}

output "s3_endpoint_id" {
  description = "Id of the S3 gateway endpoint (empty with existing_vpc_id: bring your own)."
  value       = local.create ? aws_vpc_endpoint.s3[0].id : ""
}
