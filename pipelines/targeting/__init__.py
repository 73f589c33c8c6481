"""On-site audit targeting: the cycle's draw (sampling list, inspector groups), claim samples, estimates."""
