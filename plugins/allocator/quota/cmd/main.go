// Command corral-allocator-quota is the quota allocator plugin binary. The
// master starts it through go-plugin; it is not meant to be run by hand.
package main

import (
	"github.com/corral-project/corral/plugins/allocator/quota"
	sdk "github.com/corral-project/corral/sdk/allocator"
)

func main() {
	sdk.Serve(quota.NewPlugin())
}
