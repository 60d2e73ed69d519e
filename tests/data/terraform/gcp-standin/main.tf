# Stand-in for terraform/gcp built from terraform_data only (no provider download): same variables, same
# outputs, same node names and addresses, the same ordering (network, then control planes, then workers), and
# switches to fail half-way. The backend cannot tell it from the real module, which is the point.

terraform {
  required_version = ">= 1.5"
}

locals {
  cp_names     = [for i in range(var.control_planes) : i == 0 ? "${var.lab_name}-control-plane" : "${var.lab_name}-control-plane${i + 1}"]
  worker_names = [for i in range(var.workers) : i == 0 ? "${var.lab_name}-worker" : "${var.lab_name}-worker${i + 1}"]

  node_list = concat(
    [for i, name in local.cp_names : { name = name, role = "control-plane", ip = cidrhost(var.node_cidr, 10 + i) }],
    [for i, name in local.worker_names : { name = name, role = "worker", ip = cidrhost(var.node_cidr, 10 + var.control_planes + i) }],
  )
  control_plane_address = cidrhost(var.node_cidr, 10)
  labels                = merge(var.labels, { "cilium-labs" = var.lab_name, "expires" = tostring(var.expires_at) })
}

resource "terraform_data" "network" {
  input = {
    name   = "${var.lab_name}-net"
    cidr   = var.node_cidr
    mtu    = var.network_mtu
    admins = var.admin_source_ranges
    # Read back by the destroy-time provisioner: `self` is all a destroy provisioner may see.
    fail_destroy    = var.standin_fail_destroy
    destroy_delay_s = var.standin_destroy_delay_s
  }

  provisioner "local-exec" {
    when    = destroy
    command = self.input.fail_destroy ? "echo 'standin: injected destroy failure' >&2; exit 1" : "sleep ${self.input.destroy_delay_s}"
  }

  lifecycle {
    precondition {
      condition     = var.allow_world || alltrue([for c in var.admin_source_ranges : !endswith(c, "/0")])
      error_message = "admin_source_ranges contains a /0 (0.0.0.0/0), which opens SSH and the API server to the internet; give your address/32, or set allow_world = true if you mean it."
    }
  }
}

resource "terraform_data" "api_address" {
  depends_on = [terraform_data.network]
  input      = "203.0.113.10"
}

resource "terraform_data" "control_plane" {
  for_each = { for n in local.node_list : n.name => n if n.role == "control-plane" }
  input = {
    name        = each.key
    role        = each.value.role
    internal_ip = each.value.ip
    external_ip = each.key == local.cp_names[0] ? terraform_data.api_address.output : "203.0.113.${20 + index(local.cp_names, each.key)}"
    labels      = local.labels
  }
}

resource "terraform_data" "worker" {
  for_each = { for n in local.node_list : n.name => n if n.role == "worker" }
  input = {
    name        = each.key
    role        = each.value.role
    internal_ip = each.value.ip
    external_ip = "203.0.113.${40 + index(local.worker_names, each.key)}"
    labels      = local.labels
  }

  provisioner "local-exec" {
    command = "sleep ${var.standin_worker_delay_s}"
  }

  lifecycle {
    precondition {
      # Unknown until the control planes exist, so this fails during apply, not during planning.
      condition     = !var.standin_fail_before_workers || length([for cp in terraform_data.control_plane : cp.id if cp.id == "never"]) > 0
      error_message = "standin: injected failure before the workers"
    }
  }
}
