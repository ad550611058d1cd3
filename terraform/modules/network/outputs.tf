output "vpc_id" {
  description = "Id of the VPC the hosts live in (created or existing)."
  value       = local.create ? aws_vpc.this[0].id : data.aws_vpc.existing[0].id
}

output "vpc_cidr" {
  description = "CIDR block of that VPC."
  value       = local.create ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
}

output "subnet_ids" {
  description = "Subnets hosts are spread over, in order."
  value       = local.create ? aws_subnet.public[*].id : var.existing_subnet_ids
}
