# Secrets Manager secrets: declared here, values set out of band (README.md), so no secret value
# ever passes through Terraform state or tfvars. The services read them by ARN: exactly the secrets
# some service reads through a *_SECRET_ARN variable in environment.tf, no more (the Symbl callback
# URLs carry a random secret per submission, whose digest the recording keeps: nothing signs them).
#
# A deleted secret keeps its name for var.secret_recovery_window_days; a stack destroyed and
# re-created with the same name_prefix inside that window collides with it (restore the secret
# with `aws secretsmanager restore-secret`, or use 0 for throwaway stacks).

locals {
  secrets = {
    "zoom-webhook-secret-token" = "Zoom app's webhook secret token (plain string): verifies x-zm-signature"
    "zoom-s2s-credentials"      = "Zoom Server-to-Server OAuth app: JSON {\"account_id\", \"client_id\", \"client_secret\"}"
    "symbl-credentials"         = "Symbl API: JSON {\"app_id\", \"app_secret\"}"
    "link-signing-key"          = "Key (random string, 32+ bytes) that signs the expiring links to the insights page"
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
