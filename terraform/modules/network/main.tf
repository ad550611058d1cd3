locals {
  create  = var.existing_vpc_id == ""
  private = local.create && var.private_subnets
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:Flow logs are left out of the short-lived pilot (cost); the burst traffic is measured by gateway and broker metrics. Enable them for production.
  count = local.create ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })
}

# A VPC's default security group is left with no rules so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name}-default-closed" })
}

resource "aws_internet_gateway" "this" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count = local.create ? length(var.availability_zones) : 0

  vpc_id            = aws_vpc.this[0].id
  availability_zone = var.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index + 1)
  # Instances ask for a public address themselves (fleet.assign_public_ip); the subnet does not.
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-public-${var.availability_zones[count.index]}" })
}

resource "aws_route_table" "public" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "internet" {
  count = local.create ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = local.create ? length(var.availability_zones) : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

# Private hosts: one subnet per AZ (the upper half of the VPC's /24s) routed to a NAT gateway in
# the first public subnet. One NAT gateway, not one per AZ: the pilot is short-lived and a single
# gateway costs a third of three (per hour and per GB); an AZ outage stops egress, not the burst.
resource "aws_subnet" "private" {
  count = local.private ? length(var.availability_zones) : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index + 128)
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}" })
}

resource "aws_eip" "nat" {
  count = local.private ? 1 : 0

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat" })
}

resource "aws_nat_gateway" "this" {
  count = local.private ? 1 : 0

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(var.tags, { Name = var.name })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count = local.private ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route" "nat" {
  count = local.private ? 1 : 0

  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count = local.private ? length(var.availability_zones) : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# AutoMQ writes every record to S3: through this gateway endpoint that traffic stays in the VPC,
# costs nothing per GB (a NAT gateway charges for each GB) and needs no internet route at all.
resource "aws_vpc_endpoint" "s3" {
  count = local.create ? 1 : 0

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

# One association per route table, so adding the private table later leaves the endpoint alone.
resource "aws_vpc_endpoint_route_table_association" "s3_public" {
  count = local.create ? 1 : 0

  vpc_endpoint_id = aws_vpc_endpoint.s3[0].id
  route_table_id  = aws_route_table.public[0].id
}

resource "aws_vpc_endpoint_route_table_association" "s3_private" {
  count = local.private ? 1 : 0

  vpc_endpoint_id = aws_vpc_endpoint.s3[0].id
  route_table_id  = aws_route_table.private[0].id
}

data "aws_vpc" "existing" {
  count = local.create ? 0 : 1

  id = var.existing_vpc_id

  lifecycle {
    postcondition {
      condition     = length(var.existing_subnet_ids) > 0
      error_message = "existing_subnet_ids must list at least one subnet of ${var.existing_vpc_id}."
    }
  }
}
