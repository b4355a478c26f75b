package mesos_test

import "math/rand"

// randomBody is the i-th body of a random-body property run: even rounds
// are random bytes, odd rounds a valid body with a few bytes overwritten.
// Both endpoints' properties (scheduler and executor) draw from it.
func randomBody(rng *rand.Rand, i int, valid [][]byte) []byte {
	if i%2 == 0 {
		body := make([]byte, rng.Intn(64))
		rng.Read(body)
		return body
	}
	body := append([]byte(nil), valid[rng.Intn(len(valid))]...)
	for j := 0; j < 1+rng.Intn(4) && len(body) > 0; j++ {
		body[rng.Intn(len(body))] = byte(rng.Intn(256))
	}
	return body
}
