output "security_group_ids" {
  description = "Security group id per host group: brokers, gateways, agents, monitoring."
  value       = { for g, sg in aws_security_group.this : g => sg.id }
}

output "ingress_rules" {
  description = "Every ingress rule (group, protocol, port, cidr or from_group, description), for review."
  value       = module.rules.ingress
}
