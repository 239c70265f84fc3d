/*
 * sparse_ldl.h: a sparse LDL^T factorisation of a symmetric matrix, internal
 * to the forecast module.
 *
 * The matrix is given as triplets (row, column, value) holding each
 * off-diagonal pair once (either triangle) plus the diagonal; repeated
 * positions are summed. It is reordered by a minimum-degree ordering on its
 * graph, then factorised with an up-looking LDL^T (the algorithm of T. A.
 * Davis, "Algorithm 849: a concise sparse Cholesky factorization package",
 * ACM TOMS 31(4), 2005) without pivoting: D may hold negative entries (a
 * network with a series capacitor), but a zero or negligible pivot fails
 * with ANM_ENUMERIC. The factor is immutable after factorising, so one
 * factor may be shared between threads; each solve needs caller scratch.
 */
#ifndef FORECAST_SPARSE_LDL_H
#define FORECAST_SPARSE_LDL_H

#include <stddef.h>

typedef struct forecast__ldl forecast__ldl;

/*
 * Factorises the n x n symmetric matrix of the nnz triplets into a new
 * factor (*out, owned by the caller). Returns ANM_OK, ANM_EINVAL (an index
 * out of range), ANM_ENOMEM or ANM_ENUMERIC (singular to working precision).
 */
int forecast__ldl_factor(size_t n, size_t nnz, const int *row, const int *col,
                         const double *val, forecast__ldl **out);

void forecast__ldl_destroy(forecast__ldl **f);

size_t forecast__ldl_size(const forecast__ldl *f);

/* Non-zeros of L below the diagonal (for reporting and tests). */
size_t forecast__ldl_nnz(const forecast__ldl *f);

/*
 * Solves A x = b in place (x holds b on entry, the solution on return);
 * work has room for n doubles and is overwritten.
 */
void forecast__ldl_solve(const forecast__ldl *f, double *x, double *work);

#endif
