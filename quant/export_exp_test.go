package quant

var FMASites = &fmaSites
