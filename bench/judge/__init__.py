"""The canary judge's replay benchmark: synthetic canaries with known ground truth through the gate."""
