output "nodes" {
  description = "Every node: name, role (control-plane or worker), internal and external IPv4 address."
  value = [for n in local.node_list : {
    name        = n.name
    role        = n.role
    internal_ip = n.role == "control-plane" ? terraform_data.control_plane[n.name].output.internal_ip : terraform_data.worker[n.name].output.internal_ip
    external_ip = n.role == "control-plane" ? terraform_data.control_plane[n.name].output.external_ip : terraform_data.worker[n.name].output.external_ip
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
  value       = terraform_data.api_address.output
}
