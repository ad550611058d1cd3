output "hosts" {
  description = "Hosts per group (brokers, gateways, agents, monitoring), each a list of {name, id, public_ip, private_ip} in index order."
  value = {
    for g, names in module.layout.names : g => [
      for n in names : {
        name       = n
        id         = aws_instance.this[n].id
        public_ip  = aws_instance.this[n].public_ip == null ? "" : aws_instance.this[n].public_ip
        private_ip = aws_instance.this[n].private_ip
      }
    ]
  }
}

output "key_pair_name" {
  description = "Name of the SSH key pair."
  value       = aws_key_pair.this.key_name
}
