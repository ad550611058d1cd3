output "yaml" {
  description = "The lab inventory as YAML (written to .cache/lab/hosts.yml by scripts/lab.py)."
  value       = module.inventory.yaml
}
