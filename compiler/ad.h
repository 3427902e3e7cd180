/* ad.h — reverse-mode automatic differentiation of the loss (ad.c). */
#ifndef REIN_AD_H
#define REIN_AD_H

#include "ir.h"

/* Appends to G the nodes computing d loss / d logp and d loss / d entropy and sets g->grad[]
 * (-1 for an input the loss has no derivative path to).  G must be verified and hold one node
 * per distinct input (run CSE first).  Returns G. */
IrGraph *ad_differentiate(IrGraph *g);

#endif
