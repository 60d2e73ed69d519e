# A cilium-labs lab on GCE: one VPC, firewall rules scoped by network tags, kubeadm nodes.
#
# Node names follow kind's (LAB-control-plane, LAB-control-plane2, LAB-worker, LAB-worker2, ...) and nodes get
# fixed addresses from node_cidr (.10 upwards), so the bootstrap arguments are known before anything exists.
# The first control plane gets a reserved external address, which goes into the API server certificate.

locals {
  cp_names     = [for i in range(var.control_planes) : i == 0 ? "${var.lab_name}-control-plane" : "${var.lab_name}-control-plane${i + 1}"]
  worker_names = [for i in range(var.workers) : i == 0 ? "${var.lab_name}-worker" : "${var.lab_name}-worker${i + 1}"]

  node_list = concat(
    [for i, name in local.cp_names : { name = name, role = "control-plane", ip = cidrhost(var.node_cidr, 10 + i) }],
    [for i, name in local.worker_names : { name = name, role = "worker", ip = cidrhost(var.node_cidr, 10 + var.control_planes + i) }],
  )
  nodes = { for n in local.node_list : n.name => n }

  init_node             = local.cp_names[0]
  control_plane_address = cidrhost(var.node_cidr, 10)

  tag_node          = "${var.lab_name}-node"
  tag_control_plane = "${var.lab_name}-control-plane"
  tag_worker        = "${var.lab_name}-worker"

  # The module's labels win over user labels: gc finds labs by them.
  labels = merge(var.labels, {
    "cilium-labs" = var.lab_name
    "expires"     = tostring(var.expires_at)
  })

  bootstrap_path = var.bootstrap_script_path != "" ? var.bootstrap_script_path : "${path.module}/../../bootstrap/kubeadm-node.sh"

  # Arguments of `kubeadm-node.sh up` per node; every value is validated above or computed here, and the
  # template quotes each one.
  bootstrap_args = { for name, n in local.nodes : name => concat(
    [
      "up",
      "--role", n.role,
      "--node-ip", n.ip,
      "--node-name", name,
      "--control-plane-address", local.control_plane_address,
      "--k8s-version", var.k8s_version,
      "--pod-cidrs", join(",", var.pod_cidrs),
      "--service-cidrs", join(",", var.service_cidrs),
    ],
    name == local.init_node ? ["--init", "--extra-san", google_compute_address.api.address] : [],
    var.kube_proxy_replacement ? ["--kube-proxy-replacement"] : [],
  ) }

  ssh_keys = var.ssh_public_key != "" ? { "ssh-keys" = "${var.ssh_user}:${trimspace(var.ssh_public_key)}" } : {}
}

resource "google_compute_network" "lab" {
  name                    = "${var.lab_name}-net"
  description             = "cilium-labs lab ${var.lab_name}"
  auto_create_subnetworks = false
  mtu                     = var.network_mtu
}

resource "google_compute_subnetwork" "nodes" {
  name          = "${var.lab_name}-nodes"
  description   = "cilium-labs lab ${var.lab_name}"
  region        = var.region
  network       = google_compute_network.lab.id
  ip_cidr_range = var.node_cidr
}

# -- firewall: between nodes, by network tag ------------------------------------------------------------------

# Cilium's own ports (docs: operations/system_requirements, "Firewall Rules"): VXLAN, Geneve, health checks
# (TCP 4240 + ICMP echo) and the Hubble server.
resource "google_compute_firewall" "cilium" {
  name        = "${var.lab_name}-cilium"
  description = "cilium-labs ${var.lab_name}: tunnels (VXLAN 8472, Geneve 6081), cilium-health, Hubble between nodes"
  network     = google_compute_network.lab.id
  direction   = "INGRESS"
  source_tags = [local.tag_node]
  target_tags = [local.tag_node]

  allow {
    protocol = "udp"
    ports    = ["8472", "6081"]
  }
  allow {
    protocol = "tcp"
    ports    = ["4240", "4244"]
  }
  allow {
    protocol = "icmp"
  }
}

resource "google_compute_firewall" "kubelet" {
  name        = "${var.lab_name}-kubelet"
  description = "cilium-labs ${var.lab_name}: kubelet API between nodes"
  network     = google_compute_network.lab.id
  direction   = "INGRESS"
  source_tags = [local.tag_node]
  target_tags = [local.tag_node]

  allow {
    protocol = "tcp"
    ports    = ["10250"]
  }
}

resource "google_compute_firewall" "apiserver_internal" {
  name        = "${var.lab_name}-apiserver-internal"
  description = "cilium-labs ${var.lab_name}: API server for kubelets and agents"
  network     = google_compute_network.lab.id
  direction   = "INGRESS"
  source_tags = [local.tag_node]
  target_tags = [local.tag_control_plane]

  allow {
    protocol = "tcp"
    ports    = ["6443"]
  }
}

resource "google_compute_firewall" "etcd" {
  count       = var.external_etcd ? 1 : 0
  name        = "${var.lab_name}-etcd"
  description = "cilium-labs ${var.lab_name}: etcd for Cilium's kvstore mode"
  network     = google_compute_network.lab.id
  direction   = "INGRESS"
  source_tags = [local.tag_node]
  target_tags = [local.tag_control_plane]

  allow {
    protocol = "tcp"
    ports    = ["2379-2380"]
  }
}

# -- firewall: from the admin's address only ------------------------------------------------------------------

resource "google_compute_firewall" "admin_ssh" {
  name          = "${var.lab_name}-admin-ssh"
  description   = "cilium-labs ${var.lab_name}: SSH from the admin source ranges"
  network       = google_compute_network.lab.id
  direction     = "INGRESS"
  source_ranges = var.admin_source_ranges
  target_tags   = [local.tag_node]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  lifecycle {
    precondition {
      condition     = var.allow_world || alltrue([for c in var.admin_source_ranges : !endswith(c, "/0")])
      error_message = "admin_source_ranges contains a /0 (0.0.0.0/0), which opens SSH and the API server to the internet; give your address/32, or set allow_world = true if you mean it."
    }
  }
}

resource "google_compute_firewall" "admin_api" {
  name          = "${var.lab_name}-admin-api"
  description   = "cilium-labs ${var.lab_name}: API server from the admin source ranges"
  network       = google_compute_network.lab.id
  direction     = "INGRESS"
  source_ranges = var.admin_source_ranges
  target_tags   = [local.tag_control_plane]

  allow {
    protocol = "tcp"
    ports    = ["6443"]
  }

  lifecycle {
    precondition {
      condition     = var.allow_world || alltrue([for c in var.admin_source_ranges : !endswith(c, "/0")])
      error_message = "admin_source_ranges contains a /0 (0.0.0.0/0), which opens SSH and the API server to the internet; give your address/32, or set allow_world = true if you mean it."
    }
  }
}

# -- nodes ---------------------------------------------------------------------------------------------------

resource "google_compute_address" "api" {
  name         = "${var.lab_name}-api"
  description  = "cilium-labs lab ${var.lab_name}: API server of ${local.init_node}"
  region       = var.region
  address_type = "EXTERNAL"
}

resource "google_compute_instance" "node" {
  for_each = local.nodes

  name         = each.key
  description  = "cilium-labs lab ${var.lab_name}: ${each.value.role}"
  zone         = var.zone
  machine_type = var.machine_type
  tags         = [local.tag_node, each.value.role == "control-plane" ? local.tag_control_plane : local.tag_worker]
  labels       = local.labels

  # Not needed for VXLAN/Geneve (the outer packets carry node addresses); harmless, and native-routing
  # experiments with VPC routes need it.
  can_ip_forward            = true
  allow_stopping_for_update = true

  boot_disk {
    auto_delete = true
    initialize_params {
      image  = var.image
      size   = var.disk_size_gb
      type   = var.disk_type
      labels = local.labels
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.nodes.id
    network_ip = each.value.ip
    access_config {
      nat_ip = each.key == local.init_node ? google_compute_address.api.address : null
    }
  }

  # No service account: the nodes call no Google API.

  metadata = merge({
    # The startup script fetches this copy of the bootstrap from the metadata server and runs it; GCE runs it
    # again on every boot, which the bootstrap turns into a no-op.
    "cilium-labs-bootstrap" = file(local.bootstrap_path)
    "startup-script" = templatefile("${path.module}/startup.sh.tftpl", {
      args = join(" ", [for a in local.bootstrap_args[each.key] : "'${a}'"])
    })
    "block-project-ssh-keys" = "true"
    "enable-oslogin"         = "FALSE"
  }, local.ssh_keys)

  depends_on = [
    google_compute_firewall.cilium,
    google_compute_firewall.kubelet,
    google_compute_firewall.apiserver_internal,
  ]
}
