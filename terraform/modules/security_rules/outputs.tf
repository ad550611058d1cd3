output "groups" {
  description = "The host groups that get a security group each."
  value       = local.groups
}

output "ingress" {
  description = "Ingress rules keyed by a stable name: {group, protocol, port, cidr | from_group, description}."
  value       = { for r in local.ingress_list : r.key => r }
}

output "egress" {
  description = "Egress rules keyed by a stable name: {group, protocol, from_port, to_port, cidr, description}."
  value       = { for r in local.egress_list : r.key => r }
}
