// Command corral-allocator-binpack is the binpack example allocator plugin.
// The master starts it through go-plugin; it is not meant to be run by hand.
package main

import (
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/examples/binpack"
)

func main() { sdk.Serve(binpack.NewPlugin()) }
