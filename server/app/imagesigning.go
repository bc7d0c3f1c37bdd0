package app

import "crypto"

// instancePublicKey is the public half of the instance's image signing key (SPEC §15), which satisfies
// require_signature; nil while the instance has none.
//
// Placeholder: the image signing key (created at first start, sealed with the master key) is made on the
// branch that signs builds; connect it here when the two meet.
func (a *App) instancePublicKey() crypto.PublicKey { return nil }
