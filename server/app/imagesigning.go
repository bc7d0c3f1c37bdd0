package app

import "crypto"

// instancePublicKey is the public half of the instance's image signing key (SPEC §15), which satisfies
// require_signature; nil while the instance has none (before serve has loaded it).
func (a *App) instancePublicKey() crypto.PublicKey {
	if a.SigningKey == nil {
		return nil
	}
	return a.SigningKey.Public()
}
