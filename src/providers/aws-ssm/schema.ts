import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";
import { awsBase } from "../aws/schema.js";

export const awsSsmSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("aws-ssm"),
      ...awsBase(t),
      /** Decrypt SecureString parameters (needs kms:Decrypt on their key). */
      with_decryption: z.boolean().default(true),
    })
    .strict();
