import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";
import { awsBase } from "../aws/schema.js";

export const awsStsSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("aws-sts"),
      ...awsBase(t),
      /** DurationSeconds asked of AssumeRole (15 min to 12 h; default 1 h). */
      duration: t
        .duration()
        .refine((ms) => ms >= 900_000 && ms <= 43_200_000, "must be between 15m and 12h")
        .optional(),
      /** RoleSessionName (default: the secret's path when it is not an ARN, else "sealcache"). */
      session_name: z
        .string()
        .regex(/^[\w+=,.@-]{2,64}$/, "must be 2-64 characters of [A-Za-z0-9_+=,.@-]")
        .optional(),
    })
    .strict();
