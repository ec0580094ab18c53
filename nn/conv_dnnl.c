/* conv_dnnl.c — CPU convolutions through oneDNN (placeholder until the conv ops land). */
#include <stdlib.h>

#include "nn/ctx.h"

void vqz_dnnl_state_free(void *state)
{
    free(state);
}
