# SES: the sending identity (a domain or one address) and the configuration set every email uses.

resource "aws_sesv2_configuration_set" "this" {
  configuration_set_name = "${var.name_prefix}-insights"

  delivery_options {
    tls_policy = "REQUIRE"
  }

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  suppression_options {
    suppressed_reasons = ["BOUNCE", "COMPLAINT"]
  }
}

# Sends, deliveries, bounces and complaints as CloudWatch metrics (AWS/SES) for the dashboard.
resource "aws_sesv2_configuration_set_event_destination" "cloudwatch" {
  configuration_set_name = aws_sesv2_configuration_set.this.configuration_set_name
  event_destination_name = "cloudwatch"

  event_destination {
    enabled              = true
    matching_event_types = ["SEND", "DELIVERY", "BOUNCE", "COMPLAINT", "REJECT"]

    cloud_watch_destination {
      dimension_configuration {
        dimension_name          = "ses:configuration-set"
        dimension_value_source  = "MESSAGE_TAG"
        default_dimension_value = aws_sesv2_configuration_set.this.configuration_set_name
      }
    }
  }
}

# A domain (DKIM records to publish: output ses_dkim_tokens) or a single address (SES emails a
# verification link). In the SES sandbox, recipients must be verified too.
resource "aws_sesv2_email_identity" "sender" {
  email_identity         = var.ses_identity
  configuration_set_name = aws_sesv2_configuration_set.this.configuration_set_name
}
