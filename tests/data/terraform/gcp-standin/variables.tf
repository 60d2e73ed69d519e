# A copy of terraform/gcp/variables.tf (tests/unit/backends/test_gcp_module.py checks they stay the same),
# plus the stand-in's own failure switches at the end.

variable "project" {
  description = "GCP project ID the lab is created in."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project ID (6-30 lower-case letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the subnet and the API server address."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the instances; must be in region."
  type        = string
  default     = "us-central1-a"
}

variable "lab_name" {
  description = "Lab name: prefix of every resource name and value of the cilium-labs label."
  type        = string
  validation {
    # GCE names start with a letter; 40 leaves room for "-control-plane7".
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.lab_name))
    error_message = "lab_name must start with a letter, use only a-z, 0-9 and '-', and be at most 40 characters."
  }
}

variable "control_planes" {
  description = "Number of control-plane nodes (stacked etcd; the first one is the API endpoint)."
  type        = number
  default     = 1
  validation {
    condition     = var.control_planes >= 1 && var.control_planes <= 7 && floor(var.control_planes) == var.control_planes
    error_message = "control_planes must be a whole number from 1 to 7."
  }
}

variable "workers" {
  description = "Number of worker nodes."
  type        = number
  default     = 2
  validation {
    condition     = var.workers >= 0 && var.workers <= 100 && floor(var.workers) == var.workers
    error_message = "workers must be a whole number from 0 to 100."
  }
}

variable "machine_type" {
  description = "GCE machine type of every node (kubeadm wants 2 vCPUs and 2 GB)."
  type        = string
  default     = "e2-standard-2"
}

variable "image" {
  description = "Boot image: a Debian or Ubuntu with kernel >= 5.10 (Debian 12: 6.1)."
  type        = string
  default     = "debian-cloud/debian-12"
}

variable "disk_size_gb" {
  description = "Boot disk size in GB."
  type        = number
  default     = 20
}

variable "disk_type" {
  description = "Boot disk type."
  type        = string
  default     = "pd-balanced"
}

variable "node_cidr" {
  description = "Subnet of the nodes (the original recipe's 172.16.0.0/x); nodes get .10, .11, ..."
  type        = string
  default     = "172.16.0.0/24"
  validation {
    condition     = can(cidrhost(var.node_cidr, 0)) && can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/([0-9]|1[0-9]|2[0-4])$", var.node_cidr))
    error_message = "node_cidr must be an IPv4 CIDR of /24 or larger, e.g. 172.16.0.0/24."
  }
}

variable "network_mtu" {
  description = "VPC MTU. 1460 is GCE's default; Cilium's tunnel routes get 50 bytes less (1410)."
  type        = number
  default     = 1460
}

variable "k8s_version" {
  description = "Kubernetes version installed from pkgs.k8s.io, e.g. 1.33.1."
  type        = string
  default     = "1.33.1"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.k8s_version))
    error_message = "k8s_version must look like 1.33.1."
  }
}

variable "pod_cidrs" {
  description = "Pod CIDRs given to kubeadm (one per IP family)."
  type        = list(string)
  default     = ["10.244.0.0/16"]
  validation {
    condition     = length(var.pod_cidrs) >= 1 && length(var.pod_cidrs) <= 2 && alltrue([for c in var.pod_cidrs : can(cidrhost(c, 0))])
    error_message = "pod_cidrs must hold one or two CIDRs."
  }
}

variable "service_cidrs" {
  description = "Service CIDRs given to kubeadm (one per IP family)."
  type        = list(string)
  default     = ["10.96.0.0/16"]
  validation {
    condition     = length(var.service_cidrs) >= 1 && length(var.service_cidrs) <= 2 && alltrue([for c in var.service_cidrs : can(cidrhost(c, 0))])
    error_message = "service_cidrs must hold one or two CIDRs."
  }
}

variable "kube_proxy_replacement" {
  description = "Skip kube-proxy (kubeadm --skip-phases=addon/kube-proxy) because Cilium replaces it."
  type        = bool
  default     = false
}

variable "external_etcd" {
  description = "Open TCP 2379-2380 from the nodes to the control planes, for Cilium's etcd kvstore mode."
  type        = bool
  default     = false
}

variable "admin_source_ranges" {
  description = "Who may reach SSH (22) and the API server (6443): your own address as /32. No default on purpose."
  type        = list(string)
  validation {
    condition     = length(var.admin_source_ranges) > 0 && alltrue([for c in var.admin_source_ranges : can(cidrhost(c, 0)) && !can(regex(":", c))])
    error_message = "admin_source_ranges must hold at least one IPv4 CIDR, e.g. your public address as 203.0.113.7/32."
  }
}

variable "allow_world" {
  description = "Must be true before 0.0.0.0/0 is accepted in admin_source_ranges."
  type        = bool
  default     = false
}

variable "expires_at" {
  description = "Unix time after which `cilium-labs gc` may delete the lab (the 'expires' label), e.g. $(date -d +4hours +%s)."
  type        = number
  validation {
    condition     = var.expires_at > 1500000000 && floor(var.expires_at) == var.expires_at
    error_message = "expires_at must be a Unix time in seconds."
  }
}

variable "labels" {
  description = "Extra labels on instances and disks; cilium-labs and expires are always set by the module."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys must match [a-z][a-z0-9_-]{0,62} and values [a-z0-9_-]{0,63}."
  }
}

variable "ssh_user" {
  description = "Login created on every node for ssh_public_key."
  type        = string
  default     = "cilium-labs"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a Linux user name."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key for ssh_user (the backend generates one per lab). Empty: use gcloud compute ssh."
  type        = string
  default     = ""
}

variable "bootstrap_script_path" {
  description = "Path of kubeadm-node.sh; empty means the repository layout (../../bootstrap/kubeadm-node.sh)."
  type        = string
  default     = ""
}

# -- stand-in only: failure injection ------------------------------------------------------------------------

variable "standin_fail_before_workers" {
  description = "Fail the apply after the network and control planes exist, before any worker."
  type        = bool
  default     = false
}

variable "standin_fail_destroy" {
  description = "Make destroying the network fail, so a destroy leaves resources in the state."
  type        = bool
  default     = false
}

variable "standin_worker_delay_s" {
  description = "Seconds each worker takes to create (a local-exec sleep), to interrupt an apply half-way."
  type        = number
  default     = 0
}

variable "standin_destroy_delay_s" {
  description = "Seconds destroying the network takes, to interrupt a destroy half-way."
  type        = number
  default     = 0
}
