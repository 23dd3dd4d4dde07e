# The public HTTP entry: an API Gateway HTTP API whose four routes all go to the webhook function
# (payload format 2.0; Flask routes inside). Authentication is the application's: Zoom's HMAC
# signature, the per-recording secret in the Symbl callback URL, the signed insights link.
#
# The insights page's route is greedy (`{uuid+}`): Zoom meeting UUIDs hold '/', which the link
# sends as %2F and API Gateway decodes before it matches routes, so a one-segment `{uuid}` would
# answer 404 for every such meeting.

locals {
  api_routes = toset([
    "POST /zoom/webhook",
    "POST /symbl/callback/{secret}",
    "GET /healthz",
    "GET /meetings/{uuid+}",
  ])
}

resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name_prefix}-http-api"
  description   = "Zoom webhook, Symbl callback, health and insights page"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "webhook" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = module.webhook.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = (local.function_timeouts.webhook + 2) * 1000
}

resource "aws_apigatewayv2_route" "webhook" {
  #checkov:skip=CKV_AWS_309: public by design; each route authenticates in the application (Zoom HMAC signature, callback URL secret, signed link) and /healthz is open
  for_each = local.api_routes

  api_id    = aws_apigatewayv2_api.http.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.webhook.id}"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338: access logs kept for var.log_retention_days (30 by default); the audit trail is CloudTrail's
  name              = "/aws/apigateway/${var.name_prefix}-http-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.observability.arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  # The default for a route without its own settings below (none today).
  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = true
  }

  # Each route its own token bucket, so a flood on one route is answered 429 on that route alone
  # and never spends the Zoom webhook's. The route_key references order the settings after the
  # routes (API Gateway refuses settings for a route key that does not exist yet).
  route_settings {
    route_key                = aws_apigatewayv2_route.webhook["POST /zoom/webhook"].route_key
    throttling_rate_limit    = var.api_zoom_webhook_rate_limit
    throttling_burst_limit   = var.api_zoom_webhook_burst_limit
    detailed_metrics_enabled = true
  }

  route_settings {
    route_key                = aws_apigatewayv2_route.webhook["POST /symbl/callback/{secret}"].route_key
    throttling_rate_limit    = var.api_symbl_callback_rate_limit
    throttling_burst_limit   = var.api_symbl_callback_burst_limit
    detailed_metrics_enabled = true
  }

  route_settings {
    route_key                = aws_apigatewayv2_route.webhook["GET /meetings/{uuid+}"].route_key
    throttling_rate_limit    = var.api_insights_page_rate_limit
    throttling_burst_limit   = var.api_insights_page_burst_limit
    detailed_metrics_enabled = true
  }

  route_settings {
    route_key                = aws_apigatewayv2_route.webhook["GET /healthz"].route_key
    throttling_rate_limit    = var.api_healthz_rate_limit
    throttling_burst_limit   = var.api_healthz_burst_limit
    detailed_metrics_enabled = true
  }

  lifecycle {
    # Every route runs in the webhook function: the other routes' bursts together must leave
    # some of its reserved concurrency to Zoom, or junk on them could still crowd Zoom out.
    precondition {
      condition = (
        var.api_symbl_callback_burst_limit + var.api_insights_page_burst_limit + var.api_healthz_burst_limit
        < var.webhook_reserved_concurrency
      )
      error_message = "The Symbl callback, insights page and health check burst limits together must stay below webhook_reserved_concurrency."
    }
  }

  # The route key, never the path or query: paths carry the callback secret, queries the link token.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      errorMessage       = "$context.error.message"
    })
  }
}

resource "aws_lambda_permission" "api_invokes_webhook" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = module.webhook.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
