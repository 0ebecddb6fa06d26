r"""A direct solver for a few MPI ranks: local sparse LU and a dense interface Schur system.

MUMPS is what PETSc offers for parallel direct solves, and its triangular solves are what
time stepping repeats: on the 2D P1 step matrix of 2·10⁵ dofs one MUMPS solve takes 60 ms
on one rank and 45–50 ms on two, where PETSc's own sequential LU solves in 16–20 ms
(``benchmarks/scaling.py``). This solver splits the work the way time steps need it.

Every rank's owned dofs are split into the *interface* ``I_r`` (dofs coupled to a dof owned
by another rank) and the *interior* ``D_r`` (the rest, coupled only to dofs of the same
rank). In the order (D_0, D_1, …, I) the matrix is block-arrow shaped, and

.. math::
    S\,x_I = b_I - \sum_r A_{I D_r} A_{D_r D_r}^{-1} b_{D_r},\qquad
    x_{D_r} = A_{D_r D_r}^{-1}\,(b_{D_r} - A_{D_r I} x_I),\qquad
    S = A_{II} - \sum_r A_{I D_r} A_{D_r D_r}^{-1} A_{D_r I}.

Each rank factorizes its own block ``B = P A_rr Pᵀ`` (interior in nested-dissection order,
its interface last) once, with SuperLU and no pivoting (as PETSc's own LU), into a lower
factor ``Lo`` and a unit upper factor ``Up``. The factors hold everything:
``Lo = [[Lo_D, 0], [X, Lo_I]]`` and ``Up = [[Up_D, Y], [0, Up_I]]`` with
``X = A_ID Up_D⁻¹``, ``Y = Lo_D⁻¹ A_DI`` and ``Lo_I Up_I = A_II − X Y``, this rank's
diagonal block of ``S``. The interface is small (about √n dofs per rank in 2D), so ``S``
is gathered on every rank as a dense matrix. A solve is then

1. ``z = Lo⁻¹ P b``: the local forward substitution; its interface part is
   ``z_I = Lo_I⁻¹ (b_I − X z_D)``;
2. one ``Allgatherv`` of every rank's ``z_I``;
3. ``z_I ← Q (z_I of all ranks)`` with the dense ``Q = Up_I (S⁻¹)_{I_r,:}
   blockdiag(Lo_I)``, i.e. ``Up_I x_I``;
4. ``x = Pᵀ Up⁻¹ z``: the local backward substitution, which returns ``x_I`` and
   ``x_D = Up_D⁻¹ (z_D − Y x_I)``;

one triangular solve pair of the local block (the work of a serial solve divided by the
number of ranks), one small collective and one small dense product. The substitutions run
in PETSc's sequential kernels: the factors are handed to PETSc as triangular matrices whose
own LU is trivial. Measured on 2 ranks at 2·10⁵ dofs: 11.6 ms per solve against 16–17 ms
for PETSc's LU on one rank and 45–50 ms for MUMPS on two.

It is a PETSc *Python preconditioner*: with ``{"ksp_type": "preonly", "pc_type":
"python", "pc_python_type": "bridgesolve.pde.interface_lu.InterfaceLU"}`` every KSP and SNES
of the package uses it (:data:`OPTIONS`). It is exact (no pivoting, like PETSc's own LU);
when the interface is too large for a dense Schur matrix (:data:`MAX_INTERFACE` dofs over
all ranks), or SuperLU meets a zero pivot, it hands the matrix to MUMPS instead and
records why in :attr:`InterfaceLU.fallback`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from bridgesolve._dolfinx import MPI, PETSc
from bridgesolve.solvers import INTERFACE_LU_OPTIONS

#: Solver options selecting this solver (``Problem(petsc_options=OPTIONS)``).
OPTIONS = INTERFACE_LU_OPTIONS

#: Largest interface (dofs over all ranks) kept as a dense Schur matrix on every rank:
#: 6000² doubles are 288 MB and factorize in seconds; beyond it MUMPS takes over.
MAX_INTERFACE = 6000

#: Setups that fell back to MUMPS in this process, with the reason (read by benchmarks).
FALLBACKS: list[str] = []


class InterfaceLU:
    """PETSc Python-PC context: the interface Schur direct solve (see the module docstring).

    Attributes:
        fallback: why MUMPS was used instead, or ``None``.
        interface_size: dofs of the interface over all ranks.
        factor_entries: entries of this rank's L and U factors.
    """

    def __init__(self):
        self.fallback: str | None = None
        self.interface_size = 0
        self.factor_entries = 0
        self._inner: PETSc.KSP | None = None
        self._tri: list[PETSc.Mat] = []
        self._vecs: list[PETSc.Vec] = []

    # -- PETSc's Python-PC protocol ------------------------------------------------------
    def setUp(self, pc: PETSc.PC) -> None:  # noqa: N802 - PETSc's name
        """Factorize the operator of ``pc`` (called again whenever the operator changes)."""
        self.destroy(pc)
        self.fallback = None
        A = pc.getOperators()[0]
        comm = A.getComm().tompi4py()
        try:
            self._factorize(A, comm)
        except _Fallback as why:
            self.destroy(pc)  # whatever the factorization had built
            self._use_mumps(A, str(why))

    def apply(self, pc: PETSc.PC, b: PETSc.Vec, x: PETSc.Vec) -> None:
        """``x = A⁻¹ b``."""
        if self._inner is not None:
            self._inner.solve(b, x)
            return
        work, z = self._work, self._z
        np.take(b.getArray(readonly=True), self._perm, out=work.array, mode="clip")
        self._L.solve(work, z)  # z = Lo⁻¹ P b, interface rows last
        if self._Q is not None:
            n, zz, g = self._nd, z.array, self._g
            # Every rank's Lo_I z_I is its b_I - X z_D; Q holds the Lo_I blocks.
            self._comm.Allgatherv(zz[n:], [g, self._counts, self._offsets, MPI.DOUBLE])
            zz[n:] = self._Q @ g  # Up_I x_I: the backward sweep then returns x_I itself
        self._U.solve(z, work)
        x.array[self._perm] = work.array

    def view(self, pc: PETSc.PC, viewer: PETSc.Viewer) -> None:
        """One line for ``-ksp_view``."""
        viewer.printfASCII(f"InterfaceLU: interface {self.interface_size} dofs, "
                           f"{self.factor_entries} factor entries on this rank"
                           + (f", MUMPS fallback ({self.fallback})" if self.fallback else "")
                           + "\n")

    def destroy(self, pc: PETSc.PC | None = None) -> None:
        """Free the factors (and the inner MUMPS solver, if any)."""
        for obj in [*self._tri, *self._vecs]:
            obj.destroy()
        self._tri, self._vecs = [], []
        if self._inner is not None:
            self._inner.destroy()
            self._inner = None

    # -- the factorization -----------------------------------------------------------------
    def _factorize(self, A: PETSc.Mat, comm) -> None:
        rstart, rend = A.getOwnershipRange()
        n_own = rend - rstart
        indptr, cols, vals = A.getValuesCSR()
        rows = np.repeat(np.arange(n_own), np.diff(indptr))
        off = (cols < rstart) | (cols >= rend)
        # Interface: owned dofs coupled to another rank's dofs, in either direction (the
        # sparsity pattern of a finite-element matrix is symmetric, but zeroed Dirichlet
        # rows need not be).
        touched = np.unique(cols[off])
        theirs = comm.allgather(touched) if comm.size > 1 else [touched]
        mine = np.concatenate([t[(t >= rstart) & (t < rend)] - rstart for t in theirs])
        interface = np.unique(np.concatenate([np.unique(rows[off]), mine])).astype(np.int64)
        counts = np.array(comm.allgather(interface.size))
        total = int(counts.sum())
        if total > MAX_INTERFACE:
            raise _Fallback(f"interface of {total} dofs > {MAX_INTERFACE}")
        interior = np.setdiff1d(np.arange(n_own), interface)
        local = ~off
        kept = np.concatenate([[0], np.cumsum(local)])[indptr]
        block = sp.csr_matrix((vals[local], cols[local] - rstart, kept), shape=(n_own, n_own))
        order = interior[_nested_dissection(block[interior][:, interior])] \
            if interior.size else interior
        perm = np.concatenate([order, interface])
        inverse = np.empty(n_own, dtype=np.int64)
        inverse[perm] = np.arange(n_own)
        B = block[perm]
        B.indices = inverse[B.indices].astype(B.indices.dtype)
        B.has_sorted_indices = False
        B.sort_indices()
        # SuperLU factorizes B^T = L' U' (B's CSR arrays are B^T's CSC arrays: no
        # conversion); then B = U'^T L'^T, a lower factor ``lo`` (U'^T) times a unit upper
        # factor ``up`` (L'^T), whose CSR arrays are again the CSC arrays SuperLU returns.
        reason, lu = None, None
        if interior.size == 0:
            reason = f"rank {comm.rank} has no interior dofs"
        try:
            if reason is None:
                lu = spla.splu(sp.csc_matrix((B.data, B.indices, B.indptr), shape=B.shape),
                               permc_spec="NATURAL", diag_pivot_thresh=0.0,
                               options={"Equil": False, "SymmetricMode": True})
        except RuntimeError as exc:  # a zero pivot: not for this solver
            reason = f"SuperLU on rank {comm.rank}: {exc}"
        if lu is not None and not (np.array_equal(lu.perm_r, np.arange(n_own))
                                   and np.array_equal(lu.perm_c, np.arange(n_own))):
            reason = f"SuperLU pivoted on rank {comm.rank}"
        _agree(comm, reason)
        del B, block
        nd = interior.size
        lo = _transposed(lu.U)
        up = _transposed(lu.L)
        del lu
        self.factor_entries = int(lo.nnz + up.nnz)
        self._L, self._U = _triangular(lo), _triangular(up)
        self._tri = [self._L, self._U]
        self._work, self._z = (PETSc.Vec().createSeq(n_own, comm=PETSc.COMM_SELF)
                               for _ in range(2))
        self._vecs = [self._work, self._z]
        self._perm, self._nd, self._comm = perm, nd, comm
        self.interface_size = total
        if total == 0:
            self._Q = None
            return
        lo_I = lo[nd:, nd:].toarray()
        up_I = up[nd:, nd:].toarray()
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._counts, self._offsets = counts, offsets
        mine = np.arange(offsets[comm.rank], offsets[comm.rank] + interface.size)
        # This rank's rows of S: Lo_I Up_I (= A_II - X Y) on its own interface columns,
        # A's entries on the other ranks' interface columns.
        rows_S = np.zeros((interface.size, total))
        rows_S[:, mine] = lo_I @ up_I
        global_ids = np.concatenate(comm.allgather(interface + rstart))
        where = np.full(n_own, -1)
        where[interface] = np.arange(interface.size)
        cross = off & (where[rows] >= 0)
        sorter = np.argsort(global_ids)
        at = sorter[np.searchsorted(global_ids, cols[cross], sorter=sorter)]
        _agree(comm, None if np.array_equal(global_ids[at], cols[cross])
               else f"an off-rank coupling outside the interface on rank {comm.rank}")
        np.add.at(rows_S, (where[rows[cross]], at), vals[cross])
        S = np.empty((total, total))
        comm.Allgatherv(rows_S, [S, counts * total, offsets * total, MPI.DOUBLE])
        # This rank needs only its own interface values, and only as Up_I x_I (what its
        # backward substitution turns into x_I and x_D): Q = Up_I (S⁻¹ rows of this rank).
        identity = np.zeros((total, interface.size))
        identity[mine, np.arange(interface.size)] = 1.0
        rows_inv = sla.lu_solve(sla.lu_factor(S.T, check_finite=False), identity,
                                check_finite=False).T
        # g = blockdiag(Lo_I of every rank) · (every rank's z_I): fold the blocks into Q.
        blocks = comm.allgather(lo_I) if comm.size > 1 else [lo_I]
        folded = np.empty_like(rows_inv)
        for start, block in zip(offsets, blocks, strict=True):
            folded[:, start:start + block.shape[0]] = \
                rows_inv[:, start:start + block.shape[0]] @ block
        self._Q = np.ascontiguousarray(up_I @ folded)
        self._g = np.empty(total)

    def _use_mumps(self, A: PETSc.Mat, why: str) -> None:
        self.fallback = why
        FALLBACKS.append(why)
        ksp = PETSc.KSP().create(A.getComm())
        ksp.setOperators(A)
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("lu")
        pc.setFactorSolverType("mumps")
        ksp.setUp()
        self._inner = ksp


class _Fallback(Exception):
    """The matrix is not for the interface solver (the message says why)."""


def _agree(comm, reason: str | None) -> None:
    """Raise :class:`_Fallback` on every rank when any rank has a ``reason`` (the fallback
    builds a MUMPS solver, which is collective)."""
    reasons = [r for r in comm.allgather(reason) if r] if comm.size > 1 else [reason]
    if any(reasons):
        raise _Fallback("; ".join(r for r in reasons if r))


def _nested_dissection(block: sp.csr_matrix) -> np.ndarray:
    """PETSc's nested-dissection ordering of a square local block."""
    if block.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    mat = _seqaij(block)
    rows, _ = mat.getOrdering("nd")
    order = rows.getIndices().astype(np.int64)
    rows.destroy()
    mat.destroy()
    return order


def _seqaij(block: sp.csr_matrix) -> PETSc.Mat:
    block = block.tocsr()
    block.sort_indices()
    return PETSc.Mat().createAIJ(block.shape, comm=PETSc.COMM_SELF,
                                 csr=(block.indptr.astype(PETSc.IntType, copy=False),
                                      block.indices.astype(PETSc.IntType, copy=False),
                                      block.data))


def _transposed(factor: sp.csc_matrix) -> sp.csr_matrix:
    """The transpose of a CSC matrix as CSR, sharing its arrays."""
    return sp.csr_matrix((factor.data, factor.indices, factor.indptr),
                         shape=factor.shape[::-1])


def _triangular(factor: sp.csr_matrix) -> PETSc.Mat:
    """A triangular factor as a PETSc matrix whose (fill-free) LU is done: ``solve`` is
    one triangular substitution in PETSc's sequential kernels.

    Handing PETSc the permutation too, to be applied inside its solves, made this LU 7x
    slower (2.8 s at 2e5 dofs) for 0.6 ms less per solve.
    """
    mat = _seqaij(factor)
    rows, cols = mat.getOrdering("natural")
    mat.factorLU(rows, cols, {"fill": 1.0})
    rows.destroy()
    cols.destroy()
    return mat
