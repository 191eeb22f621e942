"""The domain core: models adapters return, the error hierarchy, library configuration
and the password policy.  It imports neither the gateway nor any adapter."""
