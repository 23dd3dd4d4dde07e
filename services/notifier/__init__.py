"""The notifier: a transcribed meeting's insights into S3, and one summary email to its host."""
