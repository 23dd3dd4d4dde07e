# The public HTTP entry: an API Gateway HTTP API whose four routes all go to the webhook function
# (payload format 2.0; Flask routes inside). Authentication is the application's: Zoom's HMAC
# signature, the per-recording secret in the Symbl callback URL, the signed insights link.

locals {
  api_routes = toset([
    "POST /zoom/webhook",
    "POST /symbl/callback/{secret}",
    "GET /healthz",
    "GET /meetings/{uuid}",
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

  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = true
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
