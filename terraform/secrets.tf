# Secrets Manager secrets: declared here, values set out of band (README.md), so no secret value
# ever passes through Terraform state or tfvars. The services read them by ARN.

locals {
  secrets = {
    "zoom-webhook-secret-token" = "Zoom app's webhook secret token (plain string): verifies x-zm-signature"
    "zoom-s2s-credentials"      = "Zoom Server-to-Server OAuth app: JSON {\"account_id\", \"client_id\", \"client_secret\"}"
    "symbl-credentials"         = "Symbl API: JSON {\"app_id\", \"app_secret\"}"
    "link-signing-key"          = "Key (random string, 32+ bytes) that signs the expiring links to the insights page"
    "symbl-callback-secret"     = "Reserved for signing Symbl callback URLs (random string); the current code makes a random secret per recording instead and reads no value here"
  }
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57: third-party credentials (Zoom, Symbl) are rotated in those consoles and put here by an operator; the two keys are rotated the same way (README.md)
  #checkov:skip=CKV_AWS_149: encrypted with the AWS-managed Secrets Manager key; each role may read only the exact secrets it needs
  for_each = local.secrets

  name                    = "${var.name_prefix}/${each.key}"
  description             = each.value
  recovery_window_in_days = var.secret_recovery_window_days
}
