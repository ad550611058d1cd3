output "hosts" {
  description = "One entry per instance, keyed by inventory host name: {group, index, public_ip, subnet_id, instance_type, root_volume_gb, instance_profile}."
  value       = local.hosts
}

output "names" {
  description = "Host names per group in index order."
  value       = local.names
}
