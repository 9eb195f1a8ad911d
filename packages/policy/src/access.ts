/**
 * Product access (SPEC §5): a product listed in the policy's `product_access` may be used only by members of the
 * groups named there (or a user granted it with `users[u].products`); a product not listed is open to everyone.
 * Access is checked before caps: a user refused a product is refused whatever their spend. Usage that arrives anyway
 * is still priced and billed (it happened) and counted as an access violation.
 */
import { PRODUCTS, type Product } from "@usage/events";
import { ownValue } from "./limits.js";
import type { Policy } from "./policy.js";

/** Whether `userId` may use `product` under `policy`. */
export function productAllowed(policy: Policy, userId: string, product: string): boolean {
  const groups = ownValue(policy.product_access, product);
  if (groups === undefined) return true;
  if (ownValue(policy.users, userId)?.products?.includes(product as Product)) return true;
  return groups.some((g) => ownValue(policy.groups, g)?.members.includes(userId) ?? false);
}

/** The products `userId` may use, in the order of PRODUCTS. */
export function productsOf(policy: Policy, userId: string): Product[] {
  return PRODUCTS.filter((p) => productAllowed(policy, userId, p));
}

/** Whether the policy gates any product (then the caps report lists each user's products). */
export function gatesProducts(policy: Policy): boolean {
  return (
    Object.keys(policy.product_access).length > 0 || Object.values(policy.users).some((u) => u.products !== undefined)
  );
}
