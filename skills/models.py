"""Publishers, the trust store and signed skill manifests arrive in their issue."""
