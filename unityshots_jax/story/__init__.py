"""UnityShots on top of the LTX transformer: shot memory, boundary-aware gate, cut-type prior, the shot scan."""
