output "nodes" {
  description = "Every node: name, role (control-plane or worker), internal and external IPv4 address."
  value = [for n in local.node_list : {
    name        = n.name
    role        = n.role
    internal_ip = google_compute_instance.node[n.name].network_interface[0].network_ip
    external_ip = google_compute_instance.node[n.name].network_interface[0].access_config[0].nat_ip
  }]
}

output "ssh_user" {
  description = "User to log in as with the lab's key."
  value       = var.ssh_user
}

output "control_plane_address" {
  description = "Internal address of the first control plane: the endpoint kubelets and Cilium use."
  value       = local.control_plane_address
}

output "api_server_external_ip" {
  description = "External address of the API server (in its certificate; the kubeconfig points here)."
  value       = google_compute_address.api.address
}
