variable "name" {
  type        = string
  description = "Name of the queue; its dead-letter queue is named <name>-dlq."
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the queue: at least six times the consumer's function timeout (AWS's advice for Lambda consumers)."
}

variable "consumer_timeout_seconds" {
  type        = number
  description = "Timeout of the Lambda function that consumes the queue; the visibility timeout is checked against it."
}

variable "max_receive_count" {
  type        = number
  description = "Receives after which a message moves to the dead-letter queue."
  default     = 5
}

variable "message_retention_seconds" {
  type        = number
  description = "How long the queue keeps a message (default 4 days)."
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  type        = number
  description = "How long the dead-letter queue keeps a message (default 14 days, the maximum)."
  default     = 1209600
}

variable "receive_wait_time_seconds" {
  type        = number
  description = "Long-poll wait of ReceiveMessage calls that do not set their own (0 = short polling)."
  default     = 0
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic that the dead-letter-queue alarm notifies (alarm and recovery)."
}

variable "eventbridge_rule_arns" {
  type        = list(string)
  description = "EventBridge rules that may send to the queue, and to its DLQ as their targets' dead-letter queue (the queue policy allows events.amazonaws.com sqs:SendMessage with aws:SourceArn one of these). Empty: no one outside the account's IAM may send."
  default     = []
}
