"""Code generation for one function body (a function, a job, or the master
block): statements, expressions, runtime checks. Used by
compiler/passes/codegen.py, which owns the module and its symbols.

Conventions inside a function:
- every local variable is an alloca in the entry block (so mem2reg/SROA
  promote them); a declaration stores its initializer or its zero value
  each time it executes;
- evaluation is left to right (SPEC section 11);
- statements after a terminator (return, break, continue) in the same
  block are unreachable and not emitted (typecheck has already checked
  them, and codegen's unsupported-type scan covers the whole program);
- runtime errors call ms_runtime_error(line, col, msg) then `unreachable`;
- vectors, strings and structs (places, element operations, reference
  counting) are compiled by the VectorEmitter mixin of
  compiler/codegen/vectors.py; variables are bound in scopes that remember
  their types, so that release-var and return-releasing find the right
  variable even when names are shadowed.
"""
from __future__ import annotations

import attrs
from llvmlite import ir

from compiler.builtins import TABLE as BUILTINS
from compiler.codegen import llvm_types as CT
from compiler.codegen.vectors import VectorEmitter
from compiler.ir import lowered as L
from compiler.ir import surface as S
from compiler.ir import types as T
from compiler.ir import vectors as V
from compiler.ir.loops import counted

# A counted loop polls for cancel once per this many iterations
# (FunctionEmitter.stmt_For).
POLL_CHUNK = 4096

_INT_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}
# IEEE comparisons: ordered, except != which is true when either is NaN.
_FLOAT_CMP = {"<": "olt", "<=": "ole", ">": "ogt", ">=": "oge",
              "==": "oeq", "!=": "une"}


class FunctionEmitter(VectorEmitter):
    """Emits the body of one LLVM function from an M/s block.

    `mod` is the module-level context (compiler/passes/codegen.py:_Module):
    it gives `rt` (runtime declarations), `functions` (name -> (ir.Function,
    FuncDecl)) and `recursive` ((caller, callee) pairs that may recurse).
    """

    def __init__(self, mod, fn: ir.Function, name: str | None,
                 self_call: ir.Function | None = None):
        self.mod = mod
        # What a call of NAME itself calls: NAME's next twin, or NAME
        # (compiler/passes/codegen.py: twins).
        self.self_call = self_call
        self.rt = mod.rt
        self.types = mod.types
        self.values = mod.values
        self.fn = fn
        self.name = name          # the M/s function's name; None for master
        self._entry = ir.IRBuilder(fn.append_basic_block("entry"))
        self.b = ir.IRBuilder(fn.append_basic_block("body"))
        self.scopes: list[dict[str, ir.AllocaInstr]] = [{}]
        self.slot_types: dict = {}    # alloca -> the variable's M/s type
        self.temps: dict = {}         # temp id -> (value, type)
        self.known_unique: set = set()  # slots of vectors made unique (loops)
        # Variables released by the current run of release-var statements
        # (those before a break or continue release several scopes at once),
        # and the scope of a `for` just left (its release-vars follow it).
        self._released: set = set()
        self._closed_scope: dict | None = None
        self.loops: list[tuple[ir.Block, ir.Block]] = []  # (continue, break)
        self._stack_limit = None
        self._cancel_flag = None

    # ------------------------------------------------------------ frame

    def alloca(self, t: T.Type, name: str) -> ir.AllocaInstr:
        slot = self._entry.alloca(self.types.llvm_type(t), name=name)
        self.slot_types[slot] = t
        return slot

    def reader_slot(self) -> ir.AllocaInstr:
        return self._entry.alloca(CT.READER, name="reader")

    def stack_limit(self) -> ir.Value:
        """The thread's lowest safe stack address, loaded once at entry."""
        if self._stack_limit is None:
            ptr = self._entry.call(self.rt.fn("ms_stack_limit_ptr"), [])
            self._stack_limit = self._entry.load(ptr, name="stack.limit")
        return self._stack_limit

    def cancel_flag(self) -> ir.Value:
        """The address of this thread's cancel flag, found once at entry
        (only functions with a cancel-check call ms_cancel_flag_ptr)."""
        if self._cancel_flag is None:
            self._cancel_flag = self._entry.call(
                self.rt.fn("ms_cancel_flag_ptr"), [], name="cancel.flag")
        return self._cancel_flag

    def bind_params(self, params, values) -> None:
        values = list(values)
        if self.name in self.mod.takes_flag:    # hidden: the cancel flag
            self._cancel_flag = values.pop()
            self._cancel_flag.name = "cancel.flag"
        if self.name in self.mod.takes_limit:   # hidden: the stack limit
            self._stack_limit = values.pop()
            self._stack_limit.name = "stack.limit"
        for p, v in zip(params, values):
            slot = self.alloca(p.type, p.name)
            self.b.store(v, slot)
            self.scopes[-1][p.name] = slot

    def finish(self, ret: T.Type) -> None:
        """Close the function: fall off the end returns in void functions
        and is unreachable otherwise (typecheck rejects reachable ends)."""
        if not self.b.block.is_terminated:
            if ret == T.VOID:
                self.b.ret_void()
            else:
                self.b.unreachable()
        self._entry.branch(self.fn.basic_blocks[1])

    def runtime_error(self, pos, message: str) -> None:
        """Call ms_runtime_error at `pos` (never returns)."""
        self.b.call(self.rt.fn("ms_runtime_error"),
                    [ir.Constant(CT.I32, pos.line), ir.Constant(CT.I32, pos.col),
                     self.rt.cstring(self.b, message)])
        self.b.unreachable()

    def check(self, failed: ir.Value, pos, message: str) -> None:
        """Raise a runtime error at `pos` when `failed` is true."""
        with self.b.if_then(failed, likely=False):
            self.runtime_error(pos, message)

    # ------------------------------------------------------------ statements

    def block(self, blk: S.Block) -> None:
        self.scopes.append({})
        for s in blk.stmts:
            self.stmt(s)
        self.scopes.pop()

    def stmt(self, s) -> None:
        if self.b.block.is_terminated:
            return          # unreachable: follows a return, break or continue
        if type(s).__name__ != "ReleaseVar":
            self._released = set()
            self._closed_scope = None
        method = getattr(self, "stmt_" + type(s).__name__, None)
        if method is None:
            # The IR checkers admit no other statement kind here.
            raise AssertionError(f"codegen has no rule for statement {s}")
        method(s)

    def stmt_Block(self, s: S.Block) -> None:
        self.block(s)

    def stmt_Empty(self, s) -> None:
        pass

    def stmt_ExprStmt(self, s: S.ExprStmt) -> None:
        self.expr(s.expr)

    def stmt_VarDecl(self, s: S.VarDecl) -> None:
        value = (self.expr(s.init) if s.init is not None
                 else self.types.zero_value(s.type))
        slot = self.alloca(s.type, s.name)
        self.b.store(value, slot)
        # Bound after the initializer: `int x = x + 1;` reads an outer x.
        self.scopes[-1][s.name] = slot

    def lookup(self, e: S.Name) -> ir.AllocaInstr:
        return self.lookup_name(e.name)

    def lookup_name(self, name: str) -> ir.AllocaInstr:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise AssertionError(f"unbound variable {name} after typecheck")

    def release_slot(self, name: str, t: T.Type) -> ir.AllocaInstr:
        """The variable a release-var names: the innermost one of that name
        and type not yet released by this run of release-vars (looking
        first in the scope of a `for` just left)."""
        scopes = list(reversed(self.scopes))
        if self._closed_scope is not None:
            scopes.insert(0, self._closed_scope)
        for scope in scopes:
            slot = scope.get(name)
            if (slot is not None and slot not in self._released
                    and self.slot_types[slot] == t):
                self._released.add(slot)
                return slot
        raise AssertionError(f"release-var of unbound {name}")

    def return_slots(self, s) -> list:
        """(slot, type) of each variable a return-releasing names. Its
        names list the variables that hold references innermost first,
        latest declared first, minus a local returned by a move (always
        the innermost of its name)."""
        candidates = [(name, slot) for scope in reversed(self.scopes)
                      for name, slot in reversed(scope.items())
                      if self.types.has_refs(self.slot_types[slot])]
        used = set()
        if isinstance(s.value, V.Move):
            listed = sum(1 for n in s.releases if n == s.value.name)
            present = sum(1 for n, _ in candidates if n == s.value.name)
            if listed < present:
                used.add(self.lookup_name(s.value.name))
        out = []
        for name in s.releases:
            for n, slot in candidates:
                if n == name and slot not in used:
                    used.add(slot)
                    out.append((slot, self.slot_types[slot]))
                    break
            else:
                raise AssertionError(f"return-releasing of unbound {name}")
        return out

    def stmt_Assign(self, s: S.Assign) -> None:
        if not isinstance(s.target, S.Name):
            # lower-vectors turns every other target into a store.
            raise AssertionError(f"assignment to a non-variable reached codegen: {s}")
        slot = self.lookup(s.target)
        if s.op == "=":
            value = self.expr(s.value)
            if self.types.has_refs(s.target.type):     # a job handle
                old = self.b.load(slot)
                self.b.store(value, slot)
                self.values.release(self.b, old, s.target.type)
                return
        else:
            old = self.b.load(slot)          # read lv before evaluating e
            rhs = self.expr(s.value)
            value = self.arith(s.op[:-1], old, rhs, s.target.type, s.pos)
        self.b.store(value, slot)

    def stmt_If(self, s: S.If) -> None:
        cond = self.expr(s.cond)
        then_bb = self.fn.append_basic_block("if.then")
        end_bb = self.fn.append_basic_block("if.end")
        else_bb = (self.fn.append_basic_block("if.else")
                   if s.else_ is not None else end_bb)
        self.b.cbranch(cond, then_bb, else_bb)
        self.b.position_at_end(then_bb)
        self.scoped_stmt(s.then)
        self._branch(end_bb)
        if s.else_ is not None:
            self.b.position_at_end(else_bb)
            self.scoped_stmt(s.else_)
            self._branch(end_bb)
        self.b.position_at_end(end_bb)

    def scoped_stmt(self, s) -> None:
        """A branch or loop body is its own scope even when not a block."""
        self.scopes.append({})
        self.stmt(s)
        self.scopes.pop()

    def _branch(self, target: ir.Block) -> None:
        if not self.b.block.is_terminated:
            self.b.branch(target)

    def stmt_While(self, s: S.While) -> None:
        cond_bb = self.fn.append_basic_block("while.cond")
        body_bb = self.fn.append_basic_block("while.body")
        end_bb = self.fn.append_basic_block("while.end")
        uniques = self.enter_loop((s.cond, s.body))
        self.b.branch(cond_bb)
        self.b.position_at_end(cond_bb)
        self.b.cbranch(self.expr(s.cond), body_bb, end_bb)
        self.b.position_at_end(body_bb)
        self.loops.append((cond_bb, end_bb))
        self.scoped_stmt(s.body)
        self.loops.pop()
        self._branch(cond_bb)
        self.b.position_at_end(end_bb)
        self.leave_loop(uniques)

    def stmt_For(self, s: S.For) -> None:
        """A `for`; a counted one whose body starts with a cancel-check
        (compiler/ir/loops.py:counted) polls once per chunk of at most
        POLL_CHUNK iterations, not once per iteration: whenever `j OP E`
        holds it polls, takes lim = j + count (_chunk_limit), and runs
        `body; step` while j < lim, then tests `j OP E` again. E is
        invariant, so the iterations are the original ones, and the chunk
        is a plain inner loop `body; j += 1; j < lim`, which LLVM
        vectorizes."""
        self.scopes.append({})               # the loop's scope (init's vars)
        if s.init is not None:
            self.stmt(s.init)
        counted = _polled_counted_loop(s)
        cond_bb = self.fn.append_basic_block("for.cond")
        chunk_bb = self.fn.append_basic_block("for.chunk") if counted else None
        body_bb = self.fn.append_basic_block("for.body")
        step_bb = self.fn.append_basic_block("for.step")
        next_bb = self.fn.append_basic_block("for.next") if counted else None
        end_bb = self.fn.append_basic_block("for.end")
        uniques = self.enter_loop((s.cond, s.body, s.step))
        fill = _fill_loop(s)
        if fill is not None:
            self._fill(fill, end_bb)
        self.b.branch(cond_bb)
        self.b.position_at_end(cond_bb)
        if s.cond is not None:
            self.b.cbranch(self.expr(s.cond), chunk_bb or body_bb, end_bb)
        else:
            self.b.branch(body_bb)
        body = s.body
        if counted:
            self.b.position_at_end(chunk_bb)
            self.stmt_CancelCheck(body.stmts[0])
            slot = self.lookup_name(counted.var)
            limit = self._chunk_limit(counted, self.b.load(slot))
            self.b.branch(body_bb)
            body = attrs.evolve(body, stmts=body.stmts[1:])
        self.b.position_at_end(body_bb)
        self.loops.append((step_bb, end_bb))
        self.scoped_stmt(body)
        self.loops.pop()
        self._branch(step_bb)
        self.b.position_at_end(step_bb)
        if s.step is not None:
            self.stmt(s.step)
        if counted:
            self._branch(next_bb)
            self.b.position_at_end(next_bb)
            more = self.b.icmp_signed("<", self.b.load(slot), limit)
            self.b.cbranch(more, body_bb, cond_bb)
        else:
            self._branch(cond_bb)
        self.b.position_at_end(end_bb)
        self.leave_loop(uniques)
        # The release-vars of the loop's own variables follow the loop.
        closed = self.scopes.pop()
        self._closed_scope = closed

    def _fill(self, fill, end_bb: ir.Block) -> None:
        """A fill loop (_fill_loop): when it runs count > 0 times, count
        exact and below 2^63 (j OP E holds, and E is not MAX for `<=`,
        where the loop never ends), append repeat(x, count) to v (shared
        when v is empty, as append_all does) and go to end_bb; else fall
        through to the loop itself, where it leaves the builder. The loop
        variable is not stored: it is the loop's own, read nowhere after."""
        counted, push = fill
        b = self.b
        j = b.load(self.lookup_name(counted.var))
        end = self.expr(counted.end)
        count = b.sub(end, j)
        runs = b.icmp_signed(counted.op, j, end)
        if counted.op == "<=":
            count = b.add(count, ir.Constant(CT.I64, 1))
            runs = b.and_(runs, b.icmp_signed(
                "!=", end, ir.Constant(CT.I64, 2**63 - 1)))
        runs = b.and_(runs, b.icmp_signed(">", count, ir.Constant(CT.I64, 0)))
        fill_bb = self.fn.append_basic_block("for.fill")
        loop_bb = self.fn.append_basic_block("for.loop")
        b.cbranch(runs, fill_bb, loop_bb)
        b.position_at_end(fill_bb)
        vt = push.type
        value = self.expr(push.value)
        tmp = self.builtin_repeat([value, count], [vt.elem], push.pos)
        slot, _ = self.place(push.place)()
        b.call(self.values.vec_append_all(),
               [self.values.descriptor(vt), slot, tmp])
        self.values.release(b, tmp, vt)
        b.branch(end_bb)
        b.position_at_end(loop_bb)

    def _chunk_limit(self, counted, j: ir.Value) -> ir.Value:
        """Where a chunk of a counted loop starting at j (with j OP E)
        ends: j + count, count = min(E - j, CHUNK) for `<` and
        min(E - j, CHUNK - 1) + 1 for `<=`, the subtraction and the min
        unsigned (exact: j OP E). Only for `<=` with E near MAX can the sum
        wrap; that chunk then ends after one iteration, so there the loop
        polls every iteration, as a plain loop does."""
        left = self.b.sub(self.expr(counted.end), j)
        cap = POLL_CHUNK if counted.op == "<" else POLL_CHUNK - 1
        cap_v = ir.Constant(CT.I64, cap)
        count = self.b.select(self.b.icmp_unsigned("<", left, cap_v),
                              left, cap_v)
        if counted.op == "<=":
            count = self.b.add(count, ir.Constant(CT.I64, 1))
        return self.b.add(j, count, name="chunk.limit")

    def stmt_CancelCheck(self, s: L.CancelCheck) -> None:
        """Poll the cancel flag: a volatile load (LLVM may neither hoist it
        out of a loop nor merge it with another poll), a compare and a
        branch, almost never taken, to a cold block that calls
        ms_cancel_point. That call abandons a cancelled job; it returns only
        if the flag was set while no job runs, which cannot happen in job
        code (in the master the flag is always 0), and then the code simply
        goes on."""
        flag = _VolatileLoad(self.b.block, self.cancel_flag(), CT.I32,
                             name="cancel")
        flag.align = 4
        self.b._insert(flag)
        cancelled = self.b.icmp_unsigned("!=", flag, ir.Constant(CT.I32, 0))
        cold = self.fn.append_basic_block("cancel.point")
        cont = self.fn.append_basic_block("cancel.cont")
        br = self.b.cbranch(cancelled, cold, cont)
        br.set_weights([1, 1 << 20])
        self.b.position_at_end(cold)
        self.b.call(self.rt.fn("ms_cancel_point"), [])
        self.b.branch(cont)
        self.b.position_at_end(cont)

    def stmt_Break(self, s) -> None:
        self.b.branch(self.loops[-1][1])

    def stmt_Continue(self, s) -> None:
        self.b.branch(self.loops[-1][0])

    def stmt_Return(self, s: S.Return) -> None:
        if s.value is None:
            self.b.ret_void()
        else:
            value = self.expr(s.value)
            if s.value.type == T.VOID:       # `return f();` in a void function
                self.b.ret_void()
            else:
                self.b.ret(value)

    # ------------------------------------------------------------ expressions

    def expr(self, e) -> ir.Value | None:
        """Emit `e`; its value (None for void)."""
        method = getattr(self, "expr_" + type(e).__name__, None)
        if method is None:
            raise AssertionError(f"codegen has no rule for expression {e}")
        return method(e)

    def expr_IntLit(self, e) -> ir.Value:
        v = e.value & 0xFFFF_FFFF_FFFF_FFFF
        if v >= 1 << 63:
            v -= 1 << 64
        return ir.Constant(CT.I64, v)

    def expr_DoubleLit(self, e) -> ir.Value:
        return ir.Constant(CT.DOUBLE, float(e.value))

    def expr_BoolLit(self, e) -> ir.Value:
        return ir.Constant(CT.I1, 1 if e.value else 0)

    def expr_CharLit(self, e) -> ir.Value:
        return ir.Constant(CT.I8, e.value & 0xFF)

    def expr_JobStateLit(self, e) -> ir.Value:
        return ir.Constant(CT.I32, T.JOB_STATES.index(e.value))

    def expr_Name(self, e: S.Name) -> ir.Value:
        return self.b.load(self.lookup(e), name=e.name)

    def expr_Unary(self, e: S.Unary) -> ir.Value:
        v = self.expr(e.operand)
        if e.op == "!":
            return self.b.not_(v)
        if e.op == "~":
            return self.b.not_(v)                       # xor with -1
        if e.type == T.DOUBLE:
            return self.b.fneg(v)
        return self.b.sub(ir.Constant(CT.I64, 0), v)     # wraps

    def expr_Binary(self, e: S.Binary) -> ir.Value:
        if e.op in ("&&", "||"):
            return self.short_circuit(e)
        left = self.expr(e.left)
        right = self.expr(e.right)
        t = e.left.type
        if e.op in _FLOAT_CMP:
            return self.compare(e.op, left, right, t)
        return self.arith(e.op, left, right, t, e.pos)

    def short_circuit(self, e: S.Binary) -> ir.Value:
        left = self.expr(e.left)
        left_end = self.b.block
        rhs_bb = self.fn.append_basic_block("sc.rhs")
        end_bb = self.fn.append_basic_block("sc.end")
        if e.op == "&&":
            self.b.cbranch(left, rhs_bb, end_bb)
        else:
            self.b.cbranch(left, end_bb, rhs_bb)
        self.b.position_at_end(rhs_bb)
        right = self.expr(e.right)
        right_end = self.b.block
        self.b.branch(end_bb)
        self.b.position_at_end(end_bb)
        phi = self.b.phi(CT.I1)
        phi.add_incoming(ir.Constant(CT.I1, 0 if e.op == "&&" else 1), left_end)
        phi.add_incoming(right, right_end)
        return phi

    def compare(self, op: str, left, right, t: T.Type) -> ir.Value:
        if t == T.DOUBLE:
            return self.b.fcmp_ordered(op, left, right) if op != "!=" else \
                self.b.fcmp_unordered("!=", left, right)
        if t == T.INT:
            return self.b.icmp_signed(_INT_CMP[op], left, right)
        if isinstance(t, T.JobType):                      # by identity
            return self.b.icmp_unsigned(op, self.b.ptrtoint(left, CT.I64),
                                        self.b.ptrtoint(right, CT.I64))
        # char (unsigned bytes), bool, jobstate
        return self.b.icmp_unsigned(_INT_CMP[op], left, right)

    def arith(self, op: str, left, right, t: T.Type, pos) -> ir.Value:
        """`left op right` for + - * / % on two ints or two doubles, and the
        bit operations & | ^ << >> on two ints; pos is the operator's (where
        a division or shift error points)."""
        if t == T.DOUBLE:
            return {"+": self.b.fadd, "-": self.b.fsub, "*": self.b.fmul,
                    "/": self.b.fdiv, "%": self.b.frem}[op](left, right)
        if op in ("+", "-", "*"):       # plain wrapping: no nsw/nuw
            return {"+": self.b.add, "-": self.b.sub, "*": self.b.mul}[op](
                left, right)
        if op in ("&", "|", "^"):
            return {"&": self.b.and_, "|": self.b.or_, "^": self.b.xor}[op](
                left, right)
        if op in ("<<", ">>"):
            return self.int_shift(op, left, right, pos)
        return self.int_divide(op, left, right, pos)

    def int_shift(self, op: str, left, right, pos) -> ir.Value:
        """`<<` (bits shifted out are dropped: no nsw/nuw) and arithmetic
        `>>`, after the check that the count is in 0..63 (SPEC 12.4), so
        LLVM never sees a poison shift."""
        if not (isinstance(right, ir.Constant) and 0 <= right.constant <= 63):
            bad = self.b.icmp_unsigned(">", right, ir.Constant(CT.I64, 63))
            with self.b.if_then(bad, likely=False):
                self.b.call(self.rt.fn("ms_shift_error"),
                            [right, ir.Constant(CT.I32, pos.line),
                             ir.Constant(CT.I32, pos.col)])
                self.b.unreachable()
        if op == "<<":
            return self.b.shl(left, right)
        return self.b.ashr(left, right)

    def int_divide(self, op: str, left, right, pos) -> ir.Value:
        """Truncating / and dividend-signed %, with the zero check, and
        MIN / -1 = MIN, MIN % -1 = 0 without undefined behaviour."""
        zero = ir.Constant(CT.I64, 0)
        minus_one = ir.Constant(CT.I64, -1)
        self.check(self.b.icmp_signed("==", right, zero), pos,
                   "division by zero")
        is_m1 = self.b.icmp_signed("==", right, minus_one)
        safe = self.b.select(is_m1, ir.Constant(CT.I64, 1), right)
        if op == "/":
            return self.b.select(is_m1, self.b.sub(zero, left),
                                 self.b.sdiv(left, safe))
        return self.b.select(is_m1, zero, self.b.srem(left, safe))

    def expr_Call(self, e: S.Call) -> ir.Value | None:
        target = self.mod.functions.get(e.name)
        if target is None:
            return self.builtin(e)
        fn, decl = target
        if e.name == self.name and self.self_call is not None:
            fn = self.self_call
        args = [self.expr(a) for a in e.args]
        if e.name in self.mod.takes_limit:
            args.append(self.stack_limit())
        if e.name in self.mod.takes_flag:
            args.append(self.cancel_flag())
        recursive = (self.name is not None
                     and (self.name, e.name) in self.mod.recursive)
        if recursive:
            self.stack_check(e.pos)
        # A recursive call stays a real call (`notail`): tail-recursion
        # elimination would turn endless recursion, which SPEC makes a
        # "stack overflow" error, into an endless loop.
        result = self.b.call(fn, args, tail="notail" if recursive else False)
        return None if decl.ret == T.VOID else result

    def stack_check(self, pos) -> None:
        """Before a call that may recurse: stack overflow error at the call
        when this frame is below the thread's limit (SPEC section 11)."""
        frame = self.b.call(self.rt.fn("llvm.frameaddress.p0"),
                            [ir.Constant(CT.I32, 0)])
        below = self.b.icmp_unsigned("<", self.b.ptrtoint(frame, CT.I64),
                                     self.stack_limit())
        self.check(below, pos, "stack overflow")

    def builtin(self, e: S.Call) -> ir.Value | None:
        """A builtin call, as compiler/builtins.py says to lower it for its
        first argument's type."""
        args = [self.expr(a) for a in e.args]
        types = [a.type for a in e.args]
        builtin = BUILTINS[e.name]
        how = builtin.lowering_for(types[0] if types else None)
        if how.how == "codegen":
            method = getattr(self, f"builtin_{how.name}")
            if how.at:
                return method(args, types, pos=e.pos)
            return method(args, types)
        assert how.how in ("intrinsic", "libm", "runtime"), how
        if how.how == "runtime":        # a bool crosses the ABI as i8
            args = [self.b.zext(v, CT.I8) if t == T.BOOL else v
                    for v, t in zip(args, types)]
            if how.at:
                args += self._position(e.pos)
        result = self.b.call(self.rt.fn(how.name), args)
        if builtin.ends_path:
            # It never returns: what follows is dead code of a block of
            # its own (a statement may still release its temporaries).
            self.b.unreachable()
            self.b.position_at_end(self.fn.append_basic_block("dead"))
            return None
        if how.how == "runtime" and e.type == T.BOOL:
            return self.b.icmp_unsigned("!=", result, ir.Constant(CT.I8, 0))
        return None if e.type == T.VOID else result

    # Codegen's own builtin lowerings (compiler/builtins.py, "codegen").

    def builtin_same(self, args, types) -> ir.Value:
        return args[0]

    def builtin_widen(self, args, types) -> ir.Value:
        return self.b.zext(args[0], CT.I64)

    def builtin_int_to_double(self, args, types) -> ir.Value:
        return self.b.sitofp(args[0], CT.DOUBLE)

    def builtin_truncate(self, args, types) -> ir.Value:
        return self.b.trunc(args[0], CT.I8)

    def builtin_int_abs(self, args, types) -> ir.Value:
        v = args[0]
        neg = self.b.icmp_signed("<", v, ir.Constant(CT.I64, 0))
        return self.b.select(neg, self.b.sub(ir.Constant(CT.I64, 0), v), v)

    def builtin_int_min(self, args, types) -> ir.Value:
        pick_left = self.b.icmp_signed("<", args[0], args[1])
        return self.b.select(pick_left, args[0], args[1])

    def builtin_int_max(self, args, types) -> ir.Value:
        pick_left = self.b.icmp_signed(">", args[0], args[1])
        return self.b.select(pick_left, args[0], args[1])

    # SPEC 12.3: vector builtins, given the vector type's descriptor; an
    # element crosses the ABI in memory (its address).

    def _in_memory(self, value, t: T.Type) -> ir.Value:
        return self.spill(self.types.to_mem(self.b, value, t), t)

    def builtin_find(self, args, types) -> ir.Value:
        vt = self.values.descriptor(types[0])
        if types[1] == types[0]:
            return self.b.call(self.rt.fn("ms_vec_find_run"),
                               [vt, args[0], args[1]])
        return self.b.call(self.rt.fn("ms_vec_find"),
                           [vt, args[0], self._in_memory(args[1], types[1])])

    def builtin_slice(self, args, types, pos) -> ir.Value:
        return self.b.call(self.rt.fn("ms_vec_slice"),
                           [self.values.descriptor(types[0]), *args,
                            *self._position(pos)])

    def builtin_sort(self, args, types) -> ir.Value:
        return self.b.call(self.rt.fn("ms_vec_sort"),
                           [self.values.descriptor(types[0]), args[0]])

    def builtin_repeat(self, args, types, pos) -> ir.Value:
        vt = self.values.descriptor(T.VectorType(types[0]))
        return self.b.call(self.rt.fn("ms_vec_repeat"),
                           [vt, self._in_memory(args[0], types[0]), args[1],
                            *self._position(pos)])

    def builtin_wait_any(self, args, types) -> ir.Value:
        """ms_wait_any(js, seconds); without seconds, an infinite timeout
        (wait for as long as it takes)."""
        seconds = args[1] if len(args) > 1 else ir.Constant(CT.DOUBLE,
                                                            float("inf"))
        return self.b.call(self.rt.fn("ms_wait_any"), [args[0], seconds])

    # ------------------------------------------------------------ jobs

    def expr_StartJob(self, e: L.StartJob) -> ir.Value:
        values = [self.expr(a) for a in e.args]     # all args, left to right
        buf = self.b.call(self.rt.fn("ms_args_new"), [])
        for v, t in zip(values, e.arg_types):
            self.encode(buf, v, t)
        return self.b.call(self.rt.fn("ms_start_job"),
                           [ir.Constant(CT.I32, e.ordinal), buf])

    def _position(self, pos) -> list:
        return [ir.Constant(CT.I32, pos.line), ir.Constant(CT.I32, pos.col)]

    def expr_ReapJob(self, e: L.ReapJob) -> ir.Value | None:
        handle = self.expr(e.handle)
        reader = self.reader_slot()
        self.b.call(self.rt.fn("ms_reap_job"),
                    [handle, reader] + self._position(e.pos))
        if e.type == T.VOID:
            return None
        return self.decode(reader, e.type)

    def encode(self, buf, value, t: T.Type) -> None:
        """Append `value` to ms_buf `buf` in wire format (SPEC section 9)."""
        if CT.is_aggregate(t):
            self.b.call(self.rt.fn("ms_value_encode"),
                        [self.values.descriptor(t), self.spill(value, t), buf])
        else:
            CT.encode_scalar(self.b, self.rt, buf, value, t)

    def decode(self, reader, t: T.Type) -> ir.Value:
        """A value of type t read from `reader` (an owned one for vectors
        and structs: fresh, refcount 1)."""
        if not CT.is_aggregate(t):
            return CT.decode_scalar(self.b, self.rt, reader, t)
        slot = self._entry.alloca(self.types.mem_type(t))
        self.b.call(self.rt.fn("ms_value_decode"),
                    [self.values.descriptor(t), reader,
                     self.b.bitcast(slot, CT.PTR)])
        return self.b.load(slot)

    def expr_JobStateOf(self, e: L.JobStateOf) -> ir.Value:
        handle = self.expr(e.handle)
        return self.b.call(self.rt.fn("ms_job_state"),
                           [handle] + self._position(e.pos))

    def expr_CancelJob(self, e: L.CancelJob) -> None:
        handle = self.expr(e.handle)
        self.b.call(self.rt.fn("ms_job_cancel"),
                    [handle] + self._position(e.pos))
        return None


def _fill_loop(s: S.For):
    """(Counted, VecPush) of a loop `for (int j = S; j OP E; j += 1) v :: x;`
    (its body that one append, after a cancel-check in a job) that appends
    an invariant scalar x to a vector variable v bound outside the loop:
    it runs as one repeat (stmt_For, _fill), not element by element.
    Else None."""
    c = counted(s)
    if c is None:
        return None
    body = s.body
    stmts = body.stmts if isinstance(body, S.Block) else [body]
    if stmts and isinstance(stmts[0], L.CancelCheck):
        stmts = stmts[1:]
    if len(stmts) != 1 or not isinstance(stmts[0], S.ExprStmt):
        return None
    push = stmts[0].expr
    if not (isinstance(push, V.VecPush) and isinstance(push.place, V.VarAddr)
            and push.place.name != c.var
            and push.place.name not in c.effects.declared):
        return None
    x = push.value
    if isinstance(x, (S.BoolLit, S.CharLit, S.DoubleLit)) \
            or (x.type == T.INT and c.effects.invariant(x)):
        return c, push
    return None


def _polled_counted_loop(s: S.For):
    """The Counted form of a `for` whose body polls for cancel first
    (lower-remote's cancel-check), else None."""
    body = s.body
    if not (isinstance(body, S.Block) and body.stmts
            and isinstance(body.stmts[0], L.CancelCheck)):
        return None
    return counted(s)


class _VolatileLoad(ir.LoadInstr):
    """`load volatile`, which llvmlite's builder does not offer."""

    def __init__(self, parent, ptr, typ, name=""):
        super().__init__(parent, ptr, name=name, typ=typ)

    def descr(self, buf):
        before = []
        super().descr(before)
        buf.append(before[0].replace("load ", "load volatile ", 1))

