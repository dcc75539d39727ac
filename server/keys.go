package server

import (
	"crypto/rand"
	"crypto/subtle"
	"strings"
)

// A session has a public id and two secrets, each rand.Text (26 base32
// characters, 130 bits). Its resume key is "ID.SECRET", its watch key
// "ID.SECRET2": the id finds the session, the secret is compared in
// constant time. The id alone grants nothing.

// newID is a session's public id: 80 random bits, in base32.
func newID() string { return rand.Text()[:16] }

// newSecret is 130 random bits, in base32.
func newSecret() string { return rand.Text() }

// secretOf is the secret half of a key.
func secretOf(key string) string {
	_, s, _ := strings.Cut(key, ".")
	return s
}

// keyEqual compares a secret with a candidate in time that does not depend
// on where they differ.
func keyEqual(secret, candidate string) bool {
	return candidate != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(candidate)) == 1
}
