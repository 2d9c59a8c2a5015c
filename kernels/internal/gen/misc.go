package main

func genMisc(a *asm, g *goFile) {}
