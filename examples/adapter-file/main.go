package main

import "github.com/weftmesh/weft/plugins/sdk"

func main() { sdk.Serve(&fileAdapter{}) }
