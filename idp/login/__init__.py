"""The hosted sign-in: login transactions and their composable steps."""
