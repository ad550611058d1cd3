output "hosts" {
  description = "Hosts per group (brokers, gateways, agents, monitoring), each a list of {name, id, public_ip, private_ip} in index order."
  value = {
    for g, n in local.counts : g => [
      for i in range(n) : {
        name       = "${local.prefixes[g]}-${i}"
        id         = aws_instance.this["${local.prefixes[g]}-${i}"].id
        public_ip  = aws_instance.this["${local.prefixes[g]}-${i}"].public_ip == null ? "" : aws_instance.this["${local.prefixes[g]}-${i}"].public_ip
        private_ip = aws_instance.this["${local.prefixes[g]}-${i}"].private_ip
      }
    ]
  }
}

output "key_pair_name" {
  description = "Name of the SSH key pair."
  value       = aws_key_pair.this.key_name
}
