package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// maxSealedKey bounds what openKey reads: a sealed ECDSA key is under 1 KiB.
const maxSealedKey = 64 << 10

// sealKey encrypts key's PKCS#8 DER to passphrase with age's scrypt
// recipient (age-encryption.org/v1: scrypt, then ChaCha20-Poly1305 with
// an authenticated header), ASCII-armored ("BEGIN AGE ENCRYPTED FILE").
// `age -d FILE | openssl pkey -inform DER` recovers the key by hand.
func sealKey(key crypto.Signer, passphrase []byte, workFactor int) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, ErrWeakPassphrase
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("pki: sealing a key: %w", err)
	}
	if _, err := w.Write(der); err != nil {
		return nil, fmt.Errorf("pki: sealing a key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("pki: sealing a key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("pki: sealing a key: %w", err)
	}
	return buf.Bytes(), nil
}

// openKey reverses sealKey. A wrong passphrase (or a tampered wrapped
// file key, which age cannot tell from one) is ErrWrongPassphrase; any
// other failure (tampered header or body, truncation, a scrypt work factor
// above 2^22, not a key) is ErrDamagedKey. Neither says more.
func openKey(sealed, passphrase []byte) (crypto.Signer, error) {
	if len(passphrase) == 0 {
		return nil, ErrWrongPassphrase
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	if len(sealed) > maxSealedKey {
		return nil, ErrDamagedKey
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(sealed)), id)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, ErrWrongPassphrase
		}
		return nil, ErrDamagedKey
	}
	der, err := io.ReadAll(io.LimitReader(r, maxSealedKey))
	if err != nil {
		return nil, ErrDamagedKey
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, ErrDamagedKey
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, ErrDamagedKey
	}
	return signer, nil
}

// encodeKey is key as PEM: PKCS#8 "PRIVATE KEY", or sealed with
// passphrase when one is given.
func encodeKey(key crypto.Signer, passphrase []byte, workFactor int) ([]byte, error) {
	if len(passphrase) > 0 {
		if workFactor == 0 {
			workFactor = DefaultWorkFactor
		}
		return sealKey(key, passphrase, workFactor)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
