terraform {
  # 1.5: the module uses nothing newer; the backend checks the binary's version before running it.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Pessimistic constraint: any 7.x, never 8.0. `terraform init` writes the exact version it picked to
      # .terraform.lock.hcl next to the state, so one lab keeps one provider version for its whole life.
      version = "~> 7.0"
    }
  }
}

# Credentials come from Application Default Credentials (`gcloud auth application-default login`) or
# GOOGLE_APPLICATION_CREDENTIALS, never from a file named here.
provider "google" {
  project = var.project
  region  = var.region
  zone    = var.zone
}
