terraform {
  # Provider-free on purpose: this module only renders data, so it is tested on its own with
  # `tofu test` on machines that have no provider plugins.
  required_version = ">= 1.8.0, < 2.0.0"
}
