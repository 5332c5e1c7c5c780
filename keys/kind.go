package keys

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/key"
)

// Kind is the kind of Tink keyset a keyring holds, recorded with it so a
// keyring is never used as another kind.
type Kind string

const (
	// KindAEAD is a keyset of AES-256-GCM keys with the TINK output prefix
	// (Tink AEAD), for envelope.Randomized columns.
	KindAEAD Kind = "aead"
)

// String returns the kind's stored spelling.
func (k Kind) String() string { return string(k) }

func (k Kind) check() error {
	switch k {
	case KindAEAD:
		return nil
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedKind, string(k))
	}
}

// newKeyParams returns the parameters of a new key of kind k.
func (k Kind) newKeyParams() (key.Parameters, error) {
	switch k {
	case KindAEAD:
		return aes256GCMParams(), nil
	default:
		return nil, k.check()
	}
}

// acceptsKey reports whether key may appear in a keyring of kind k: the
// envelope format needs the TINK output prefix on every key.
func (k Kind) acceptsKey(key key.Key) bool {
	switch k {
	case KindAEAD:
		return isAES256GCMTink(key)
	default:
		return false
	}
}

// aes256GCMParams are Tink's AES256_GCM template as parameters: 32-byte
// key, 12-byte IV, 16-byte tag, TINK prefix.
func aes256GCMParams() *aesgcm.Parameters {
	p, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: 32,
		IVSizeInBytes:  12,
		TagSizeInBytes: 16,
		Variant:        aesgcm.VariantTink,
	})
	if err != nil {
		panic("keys: constant AES-256-GCM parameters rejected: " + err.Error())
	}
	return p
}

func isAES256GCMTink(k key.Key) bool {
	g, ok := k.(*aesgcm.Key)
	if !ok {
		return false
	}
	p, ok := g.Parameters().(*aesgcm.Parameters)
	return ok && p.Equal(aes256GCMParams())
}
