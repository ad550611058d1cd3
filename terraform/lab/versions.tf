terraform {
  # Provider-free: the local lab only renders its inventory with the same module the AWS root uses.
  required_version = ">= 1.8.0, < 2.0.0"
}
