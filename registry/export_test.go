package registry

// SetGCTestHook makes the garbage collector call f between its phases:
// "marked" (what stays is decided, nothing deleted yet) and "remarked" (just
// before blobs are swept).
func SetGCTestHook(r *Registry, f func(stage string)) { r.gcTestHook = f }
